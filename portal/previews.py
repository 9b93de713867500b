"""A plan change's preview, handed to the browser signed and read back when the customer confirms
it: bound to the customer and to this purpose, and good for as long as a preview may be confirmed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.core import signing

from billing.models import BillingCustomer
from billing.plans import When
from billing.services import plans

# Signed previews are bound to this purpose (and to the customer, inside them).
_SALT = "portal.plan-preview"


def signed(*, preview: plans.Preview, customer: BillingCustomer) -> str:
    data = {**dataclasses.asdict(preview), "customer": customer.pk}
    data.update(next_at=preview.next_at.isoformat(), effective_at=preview.effective_at.isoformat())
    return signing.dumps(data, salt=_SALT)


def unsigned(*, value: str, customer: BillingCustomer) -> plans.Preview | None:
    """The preview, if `value` is one we signed for this customer, recently enough."""
    try:
        data: dict[str, Any] = signing.loads(value, salt=_SALT, max_age=plans.PREVIEW_SECONDS)
    except signing.BadSignature:
        return None
    if data.pop("customer", None) != customer.pk:
        return None
    try:
        data.update(
            when=When(data["when"]),
            next_at=dt.datetime.fromisoformat(data["next_at"]),
            effective_at=dt.datetime.fromisoformat(data["effective_at"]),
        )
        return plans.Preview(**data)
    except (KeyError, TypeError, ValueError):
        return None
