"""The decline playbook's words in templates: {% decline_text f.family "explanation" %}."""

from __future__ import annotations

from django import template

from billing import declines

register = template.Library()

_PARTS = frozenset({"title", "explanation", "instruction", "button", "summary"})


@register.simple_tag
def decline_text(family: str, part: str) -> str:
    """One text of the playbook for a decline family, in the active language; an unknown family
    reads as the generic one (a code Stripe added after this was written)."""
    if part not in _PARTS:
        raise template.TemplateSyntaxError(f"decline_text: no part {part!r}")
    try:
        known = declines.Family(family)
    except ValueError:
        known = declines.Family.GENERIC
    return str(getattr(declines.playbook_for(family=known), part))


@register.simple_tag
def decline_reason(code: str) -> str:
    """What a decline means and what to do, for a card the customer just tried: the playbook's
    words for the code (billing.declines), the same as in the recovery messages."""
    playbook = declines.playbook_for_decline(decline=declines.decline_for(code=code or ""))
    return f"{playbook.explanation} {playbook.instruction}"
