"""The language selector's choices: {% language_choices as languages %} gives (code, name) pairs,
each name in its own language ("Svenska"), for the languages in settings.LANGUAGES."""

from __future__ import annotations

import functools

from django import template
from django.conf import settings
from django.utils.translation import get_language_info

register = template.Library()


@register.simple_tag
def language_choices() -> list[tuple[str, str]]:
    return _choices(tuple(code for code, _name in settings.LANGUAGES))


# What {% get_available_languages %} and {% get_language_info_list %} would give the selector,
# less their work on every page: a language's own name is a constant of Django's LANG_INFO.
@functools.cache
def _choices(codes: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(code, str(get_language_info(code)["name_local"])) for code in codes]
