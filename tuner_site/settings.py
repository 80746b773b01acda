"""Settings, read from environment variables through strict helpers; safe for development."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("TUNER_DATA_DIR") or BASE_DIR / "var")


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1/0, true/false, yes/no or on/off, not {value!r}")


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envlist(name: str, default: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


def envpaths(name: str) -> list[Path]:
    """Folders separated by os.pathsep (":" here, ";" on Windows), as PATH lists them."""
    return [Path(v).expanduser() for v in os.environ.get(name, "").split(os.pathsep) if v.strip()]


def envpath(name: str, default: Path) -> Path | None:
    """A folder from the environment; set but empty means none."""
    value = os.environ.get(name)
    if value is None:
        return default
    return Path(value) if value.strip() else None


def _data_dir() -> Path:
    """The dashboard's own folder: its database, secret key and indexes are for its owner only."""
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = DATA_DIR.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            DATA_DIR.chmod(0o700)  # made by an earlier version, readable by everyone
    except (OSError, AttributeError):  # not ours, or no owners (Windows)
        pass
    return DATA_DIR


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into the data folder.

    Several workers may start at once on a fresh folder: each writes a whole key under its own
    name and links it into place. The first link wins; everyone reads the winner's key.
    """
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker linked its key first
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it, and a new key is made.")
    return key


# Django's SQLite, with a private file that only `migrate` creates (tuner_site/sqlite/base.py).
# The evaluation worker writes while pages read: WAL lets readers go on during a write, and
# IMMEDIATE transactions take the write lock up front instead of failing to upgrade to it.
SQLITE_OPTIONS: dict[str, object] = {
    "OPTIONS": {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 5,  # then a page says "busy, try again" rather than wait on
    }
}


def _sqlite(name: object) -> dict[str, object]:
    return {"ENGINE": "tuner_site.sqlite", "NAME": name, **SQLITE_OPTIONS}


def _database(url: str) -> dict[str, object]:
    if not url:
        return _sqlite(DATA_DIR / "tuner.sqlite3")
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    if parts.scheme == "sqlite":
        return _sqlite(unquote(parts.path))
    raise ImproperlyConfigured(f"DATABASE_URL must be postgres://… or sqlite:///…, not {url!r}")


DEBUG = envbool("DEBUG", "1")
_data_dir()
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# The training workspace: a checkout of the upstream project, with Trainers/ and Evaluator/.
# Without one, `make run` builds and serves a demo workspace here.
TUNER_DEMO_WORKSPACE = DATA_DIR / "demo-workspace"
TUNER_WORKSPACE = Path(os.environ.get("TUNER_WORKSPACE") or TUNER_DEMO_WORKSPACE)
TUNER_RUNNING_WINDOW = envint("TUNER_RUNNING_WINDOW", "600")
# More Hugging Face output folders (each a run, or a folder of runs), each shown as a trainer.
TUNER_RUN_DIRS = envpaths("TUNER_RUN_DIRS")
# Log indexes, kept so a restart does not re-read every log. Empty: keep them in memory only.
TUNER_INDEX_DIR = envpath("TUNER_INDEX_DIR", DATA_DIR / "index")
# Each published GGUF file's sha256, so a restart does not re-read gigabytes. Empty: memory only.
TUNER_HASH_FILE = envpath("TUNER_HASH_FILE", DATA_DIR / "gguf-sha256.json")
# A run list sorted or searched by what only logs tell reads this many unindexed runs before
# answering; more are read in the background (a list in an order the walk knows reads its page).
TUNER_SYNC_INDEX_LIMIT = envint("TUNER_SYNC_INDEX_LIMIT", "50")
TUNER_REQUIRE_LOGIN = envbool("TUNER_REQUIRE_LOGIN", "0")
TUNER_RUNS_PER_PAGE = envint("TUNER_RUNS_PER_PAGE", "50")
# How often open pages poll for running runs and inference servers.
TUNER_REFRESH_SECONDS = envint("TUNER_REFRESH_SECONDS", "3")

# Inference servers: unset means each one's default address, an empty value switches it off.
# A system check (tuner_site/checks.py) validates them.
OLLAMA_HOST = os.environ.get("OLLAMA_HOST")
LMSTUDIO_HOST = os.environ.get("LMSTUDIO_HOST")
TUNER_OPENAI_BACKENDS = os.environ.get("TUNER_OPENAI_BACKENDS", "")
TUNER_BACKEND_TIMEOUT = min(envint("TUNER_BACKEND_TIMEOUT_MS", "1500"), 2000) / 1000
TUNER_BACKEND_CACHE_SECONDS = envint("TUNER_BACKEND_CACHE_SECONDS", "3")

# Evaluations started from the dashboard: a background job runs the workspace's own Evaluator
# (`python -m Evaluator.cli`) with this interpreter, which needs `requests`.
TUNER_EVALUATOR_PYTHON = os.environ.get("TUNER_EVALUATOR_PYTHON") or sys.executable
# What one evaluation may use: it is stopped after TUNER_EVAL_BASE_SECONDS plus
# TUNER_EVAL_SECONDS_PER_CASE for each case it runs (the Evaluator's own worst case for one
# case is a 60 s request tried three times), and its process may hold TUNER_EVAL_MEMORY_MB of
# memory and write files up to TUNER_EVAL_RESULT_MB.
TUNER_EVAL_BASE_SECONDS = envint("TUNER_EVAL_BASE_SECONDS", "600")
TUNER_EVAL_SECONDS_PER_CASE = envint("TUNER_EVAL_SECONDS_PER_CASE", "180")
TUNER_EVAL_MEMORY_MB = envint("TUNER_EVAL_MEMORY_MB", "4096")
TUNER_EVAL_RESULT_MB = envint("TUNER_EVAL_RESULT_MB", "256")
# Django's tasks API (django-tasks on 5.2). By default jobs wait in this database for
# `manage.py db_worker`; a team can name another backend (django_tasks_rq.RQBackend, …) and
# the apps it needs, e.g. TUNER_TASKS_APPS=django_rq,django_tasks_rq.
TUNER_TASKS_BACKEND = os.environ.get("TUNER_TASKS_BACKEND") or "django_tasks_db.DatabaseBackend"
TUNER_TASKS_APPS = envlist("TUNER_TASKS_APPS", "")
TASKS = {"default": {"BACKEND": TUNER_TASKS_BACKEND}}


def rq_queues(url: str) -> dict[str, dict[str, Any]]:
    """django-rq's queue for django-tasks-rq, on that Redis. RQ's own time limit is off: an
    evaluation has its own (TUNER_EVAL_*), and RQ's default 180 s would kill longer ones."""
    if url.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
        raise ImproperlyConfigured(
            f"TUNER_RQ_URL must be redis://host:6379/0 (or rediss://, unix://), not {url!r}"
        )
    return {"default": {"URL": url, "DEFAULT_TIMEOUT": -1}}


# django-tasks-rq takes its Redis from django-rq's queues; `manage.py rqworker` fails lost jobs
# as db_worker does (tuner_site/jobs/rq_worker.py) and runs tasks with django-tasks-rq's Job.
if TUNER_RQ_URL := os.environ.get("TUNER_RQ_URL", ""):
    RQ_QUEUES = rq_queues(TUNER_RQ_URL)
    RQ = {"WORKER_CLASS": "tuner_site.jobs.rq_worker.Worker", "JOB_CLASS": "django_tasks_rq.Job"}
elif TUNER_TASKS_BACKEND.startswith("django_tasks_rq."):
    raise ImproperlyConfigured(
        f"TUNER_TASKS_BACKEND={TUNER_TASKS_BACKEND} needs TUNER_RQ_URL, the Redis its jobs "
        "wait in (redis://host:6379/0)."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    # Before django_tasks_db: its db_worker command is ours, which first fails lost jobs.
    "tuner_site",
    "django_tasks",
    "django_tasks_db",
    *TUNER_TASKS_APPS,
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tuner_site.middleware.throttle_logins",
    "tuner_site.middleware.require_login",
    "tuner_site.middleware.ErrorPages",
]

ROOT_URLCONF = "tuner_site.urls"
WSGI_APPLICATION = "tuner_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tuner_site.context_processors.dashboard",
            ],
        },
    }
]

DATABASES = {"default": _database(os.environ.get("DATABASE_URL", ""))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TZ_NAME", "UTC")
USE_I18N = False
USE_TZ = True

# Served under a sub-path (https://box.lan/tuner/): gunicorn takes it from SCRIPT_NAME and
# strips it from each path; FORCE_SCRIPT_NAME is for a proxy that strips it itself. Links come
# from reverse() either way; static URLs are fixed here, as Django keeps the first one it makes.
FORCE_SCRIPT_NAME = os.environ.get("FORCE_SCRIPT_NAME") or None
_sub_path = (FORCE_SCRIPT_NAME or os.environ.get("SCRIPT_NAME", "")).rstrip("/")
STATIC_URL = f"{_sub_path}/static/"
WHITENOISE_STATIC_PREFIX = "/static/"  # matched against the path below the sub-path
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
# WhiteNoise serves from here once collectstatic has run; it warns when the folder is absent.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# A refused CSRF check answers like every other error: JSON under /api/, a page elsewhere.
CSRF_FAILURE_VIEW = "tuner_site.views.errors.csrf_failure"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tuner-overview"

# Served over HTTPS (`make serve-lan`, or behind a TLS proxy on the same host): cookies and
# redirects follow. Browsers ignore HSTS sent with a self-signed certificate: no lock-out.
TUNER_HTTPS = envbool("TUNER_HTTPS", "0")
if TUNER_HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "3600")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = False
    SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = [
    # Subdomains and preload lists are for public domains, not a workstation on a LAN.
    "security.W005",
    "security.W021",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "tuner": {"handlers": ["console"], "level": "INFO"},
        # Malformed logs and prompt sets, once per version of each file.
        "discovery": {"handlers": ["console"], "level": "WARNING"},
    },
}
