from __future__ import annotations

import importlib
import pkgutil

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Change kinds and messages are declared in the module of their area; importing every
        # area registers them all before the first request, task or check.
        from billing import checks, services

        for module in pkgutil.iter_modules(services.__path__):
            importlib.import_module(f"{services.__name__}.{module.name}")
        checks.register()
