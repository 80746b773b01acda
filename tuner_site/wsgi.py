from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuner_site.settings")
application = get_wsgi_application()

# A server (runserver or gunicorn) answers a never-seen log from a few windows of it and reads
# it in full in the background; commands and the library read in full before answering.
from discovery.logindex import indexer  # noqa: E402

indexer.background = True

# What is loaded by now lives as long as the server: kept out of the collector's full passes,
# which otherwise traverse all of Django at random moments (70 ms in the middle of a first
# /runs/ answer on a thousand runs).
gc.freeze()
