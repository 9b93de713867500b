import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_asgi_application()
# Refuse to serve with an empty secret key (Django raises ImproperlyConfigured on reading it).
settings.SECRET_KEY  # noqa: B018
