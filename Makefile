# Everything runs inside .venv, created on first use from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-db lint install serve-lan

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,rq]"
	touch $@

install: $(VENV)/.installed

# serve-lan's evaluation worker runs beside gunicorn and is stopped with it (Ctrl-C reaches it
# too): its running evaluation goes back to the queue. No autoreload: a reload would stop it.
WORKER := $(PY) manage.py db_worker --no-reload
STOP_WORKER := trap 'trap - EXIT; kill -TERM $$worker 2>/dev/null' EXIT INT TERM

# The server, its worker and, with no TUNER_WORKSPACE, the demo: a workspace whose running run
# keeps training while you look, and an inference server. `manage.py serve` refuses a busy port
# before starting anything and stops them all together, whatever ends first.
run: install
	@$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Tests run in parallel, a process per core (pytest-xdist); each has its own database and
# temporary folders. TESTS_N=0 runs them all in this one process.
TESTS_N ?= auto
XDIST = -n $(TESTS_N) --dist loadgroup

test: install
	$(PY) -m pytest $(XDIST)

# Share on a LAN over HTTPS with a self-signed certificate made once for ALLOWED_HOSTS. The
# 120 s timeout: a sweep form's trial load of an adapter on vLLM may take a minute (a slow
# disk), and gunicorn's default 30 s would kill the worker in the middle of it.
serve-lan: install
	@test -n "$$ALLOWED_HOSTS" || { echo "Set ALLOWED_HOSTS to the names or addresses teammates use, e.g. ALLOWED_HOSTS=mybox.lan,192.168.1.20"; exit 2; }
	DEBUG=0 TUNER_HTTPS=1 $(PY) manage.py migrate --no-input
	DEBUG=0 TUNER_HTTPS=1 $(PY) manage.py collectstatic --no-input -v0
	DEBUG=0 TUNER_HTTPS=1 $(PY) manage.py lan_cert
	@DEBUG=0 TUNER_HTTPS=1 $(WORKER) & worker=$$!; $(STOP_WORKER); \
	DEBUG=0 TUNER_HTTPS=1 $(VENV)/bin/gunicorn tuner_site.wsgi --workers 2 --bind $${BIND:-0.0.0.0:8443} \
		--timeout 120 --certfile $${TUNER_DATA_DIR:-var}/tls/cert.pem --keyfile $${TUNER_DATA_DIR:-var}/tls/key.pem

# The database-touching tests (marked django_db) again, on the database DATABASE_URL names
# (CI: PostgreSQL).
test-db: install
	@test -n "$$DATABASE_URL" || { echo "Set DATABASE_URL, e.g. postgres://user:pass@127.0.0.1/tuner"; exit 2; }
	$(PY) -m pytest $(XDIST) -m django_db

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
