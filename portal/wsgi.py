import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()
# Refuse to serve with an empty secret key (Django raises ImproperlyConfigured on reading it).
settings.SECRET_KEY  # noqa: B018
