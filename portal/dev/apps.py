from django.apps import AppConfig


class DevConfig(AppConfig):
    """Development tools, installed only with DJANGO_DEBUG=1: `manage.py demo` and /dev/mailbox/."""

    name = "portal.dev"
    label = "portal_dev"
    verbose_name = "Development tools"
