"""Deep links: a message's button opens the one action that fixes the customer's problem, without
a password, for that action only.

A link names the delivery that carried it (which says whose it is, which case and invoice, which
message and channel) and its purpose, signed with Django's signing key:

    /l/<delivery id, base 36><purpose letter>-<signature>

The signature covers the customer's id as well, so a link works for the customer it was sent to
and nobody else, and a changed digit or purpose breaks it.  It is short enough for a text message:
22 characters of an HMAC-SHA256 (132 bits) are as unguessable as a session id, which is all a link
needs to be.  A link expires with its policy's `link_days`; what was done with it is recorded as
LinkEvents (billing.services.links), never by opening it.
"""

from __future__ import annotations

import dataclasses
import enum

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from billing import declines

_SALT = "billing.links"
_SIGNATURE_LENGTH = 22
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class Purpose(enum.StrEnum):
    """What a link may do: one of billing.declines.Action's actions, or ask for more time to pay
    (billing.extensions)."""

    UPDATE_CARD = "update_card"
    PAY_NOW = "pay_now"
    APPROVE = "approve"
    EXTEND = "extend"


# One letter each, to keep the link short; never reuse a letter for another purpose.
_LETTERS: dict[Purpose, str] = {
    Purpose.UPDATE_CARD: "u",
    Purpose.PAY_NOW: "p",
    Purpose.APPROVE: "a",
    Purpose.EXTEND: "x",
}
_PURPOSES = {letter: purpose for purpose, letter in _LETTERS.items()}


def label(*, purpose: Purpose) -> Promise:
    """The button that carries a link says what it does, in the playbook's words."""
    if purpose == Purpose.EXTEND:
        return _("Ask for more time")
    return declines.button_for(action=declines.Action(purpose))


@dataclasses.dataclass(frozen=True)
class Token:
    """A link as read from its URL, before its signature is checked against its customer."""

    delivery_id: int
    purpose: Purpose
    signature: str


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
        if number == 0:
            return digits


def _signature(*, delivery_id: int, purpose: Purpose, customer_id: int) -> str:
    value = f"{delivery_id}:{purpose}:{customer_id}"
    return signing.Signer(salt=_SALT, algorithm="sha256").signature(value)[:_SIGNATURE_LENGTH]


def token_for(*, delivery_id: int, purpose: Purpose, customer_id: int) -> str:
    signature = _signature(delivery_id=delivery_id, purpose=purpose, customer_id=customer_id)
    return f"{_base36(delivery_id)}{_LETTERS[purpose]}-{signature}"


def url_for(*, delivery_id: int, purpose: Purpose, customer_id: int) -> str:
    token = token_for(delivery_id=delivery_id, purpose=purpose, customer_id=customer_id)
    return str(settings.PORTAL_BASE_URL).rstrip("/") + reverse("portal:link", args=[token])


def parse(token: str) -> Token | None:
    """The link's parts, or None when it is not one of ours in shape (a cut or edited link)."""
    head, _sep, signature = token.partition("-")
    if len(head) < 2 or len(head) > 14 or len(signature) != _SIGNATURE_LENGTH:
        return None
    purpose = _PURPOSES.get(head[-1])
    if purpose is None or any(char not in _DIGITS for char in head[:-1]):
        return None
    return Token(delivery_id=int(head[:-1], 36), purpose=purpose, signature=signature)


def signed_for(*, token: Token, customer_id: int) -> bool:
    """Whether the link was signed by us for this customer (constant time)."""
    expected = _signature(delivery_id=token.delivery_id, purpose=token.purpose, customer_id=customer_id)
    return constant_time_compare(expected, token.signature)
