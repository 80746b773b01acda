from __future__ import annotations

import gc
import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuner_site.settings")
application = get_wsgi_application()

# gunicorn runs no system checks: refuse to start, in one line, rather than answer every page
# with a 500 because the static files' manifest is missing. Exit status 3 is gunicorn's "a
# worker failed to boot": it stops instead of starting the worker again and again.
from tuner_site.checks import static_files_problem  # noqa: E402

if problem := static_files_problem():
    print(problem, file=sys.stderr)
    sys.exit(3)

# A server (runserver or gunicorn) answers a never-seen log from a few windows of it and reads
# it in full in the background; commands and the library read in full before answering.
from discovery.logindex import indexer  # noqa: E402

indexer.background = True

# What is loaded by now lives as long as the server: kept out of the collector's full passes,
# which otherwise traverse all of Django at random moments (70 ms in the middle of a first
# /runs/ answer on a thousand runs).
gc.freeze()
