"""A stand-in for the product this portal bills for: its views ask billing.access, as the real
product's would, so access is decided in exactly one place."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.access import Level, requires_access


@require_GET
@requires_access(Level.GRACE)
def workspace(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/workspace.html")
