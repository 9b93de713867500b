"""The portal bench's yardstick: the site's URLs plus one bare view that only the bench serves.

The bare view is what any page costs at the least: login required, the site's whole middleware
stack (session, user, the customer's language and time zone, CSP...), one small template rendered
with the site's template engine and context processors, and nothing else.  The bench sets this
module as ROOT_URLCONF (override_settings) while it measures pages, so the deployed portal never
has the view.  Its pattern comes after the site's, so the pages resolve exactly as they do there.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import path

from portal.urls import urlpatterns as portal_urlpatterns

PATH = "/bench/bare/"

TEMPLATE = """<!doctype html>
<html lang="{{ LANGUAGE_CODE }}">
<head><meta charset="utf-8"><title>Bench</title></head>
<body><main><h1>Hello, {{ user.email }}</h1></main></body>
</html>
"""


@functools.cache
def template() -> Any:
    # Compiled once, as the site's cached template loader keeps its compiled files.
    return engines["django"].from_string(TEMPLATE)


@login_required
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(template().render({}, request))


urlpatterns = [*portal_urlpatterns, path(PATH.strip("/") + "/", bare, name="bench_bare")]
