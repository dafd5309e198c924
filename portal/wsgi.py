"""WSGI entry point (gunicorn portal.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# After Django is set up (the checks read the settings and the installed apps).
from portal.checks import stop_on_check_errors  # noqa: E402

stop_on_check_errors()
