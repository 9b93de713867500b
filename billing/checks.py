"""System checks (`manage.py check`, run by the test suite): every change kind and every message
declares all it must, and every text it needs exists."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from billing.changes import KINDS, ChangeKind, ChangeParams, ChangeResult
from billing.messages import MESSAGES, PARTS, Message

KIND_DECLARES = ("name", "label", "template", "Params", "Result", "messages", "dedupe", "supersedes")


def kind_problems(kind: ChangeKind[Any, Any]) -> list[str]:
    missing = [attr for attr in KIND_DECLARES if not hasattr(kind, attr)]
    if missing:
        return [f"declares no {', '.join(missing)}"]
    problems = []
    if not (isinstance(kind.Params, type) and issubclass(kind.Params, ChangeParams)):
        problems.append("Params is not a ChangeParams")
    elif unknown := [f for f in kind.dedupe if f not in kind.Params.model_fields]:
        problems.append(f"dedupe names {unknown}, which are not parameters")
    if not (isinstance(kind.Result, type) and issubclass(kind.Result, ChangeResult)):
        problems.append("Result is not a ChangeResult")
    for method in ("apply", "confirmation"):
        if getattr(type(kind), method) is getattr(ChangeKind, method):
            problems.append(f"does not say how it is {'applied' if method == 'apply' else 'confirmed'}")
    overridden = {
        m for m in ("awaiting_approval", "approved") if getattr(type(kind), m) is not getattr(ChangeKind, m)
    }
    if overridden == {"awaiting_approval"}:
        problems.append("waits on the customer approving payments but does not say how an approved one ends")
    if not kind.messages:
        problems.append("names no message that confirms it")
    for message in kind.messages:
        if MESSAGES.get(message.name) is not message:
            problems.append(f"is confirmed by {message.name!r}, which is not a declared message")
    try:
        get_template(kind.template)
    except TemplateDoesNotExist:
        problems.append(f"shows its result with {kind.template}, which does not exist")
    return problems


def message_problems(message: Message) -> list[str]:
    problems = []
    if not message.channels:
        problems.append("has no channel")
    for channel in message.channels:
        for part in PARTS[channel]:
            try:
                get_template(message.template(part))
            except TemplateDoesNotExist:
                problems.append(f"has no {channel} text ({message.template(part)})")
    return problems


def check_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    for name, kind in KINDS.items():
        for problem in kind_problems(kind):
            found.append(checks.Error(f"change kind {name!r} {problem}", id="billing.E001"))
    for name, message in MESSAGES.items():
        for problem in message_problems(message):
            found.append(checks.Error(f"message {name!r} {problem}", id="billing.E002"))
    return found


def register() -> None:
    checks.register(check_registry, "billing")
