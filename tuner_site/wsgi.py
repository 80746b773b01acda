from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuner_site.settings")
application = get_wsgi_application()

# A server (runserver or gunicorn) answers a never-seen log from a few windows of it and reads
# it in full in the background; commands and the library read in full before answering.
from discovery.logindex import indexer  # noqa: E402

indexer.background = True
