"""The backup card's rules, as pure functions: whether a customer's backup card may pay a failed
renewal, and when.

Stripe retries only the subscription's default card and never falls back to a second one by
itself, so the portal charges the backup card (billing.services.backup), once per invoice, and
only with the consent the customer gave when they chose it.
"""

from __future__ import annotations

import datetime as dt
import enum

# Ahead of Stripe's next automatic retry of the default card: the backup card *is* the next
# attempt, so a payment it makes leaves Stripe nothing to retry (a retry of the default card
# would be one more decline counted against that card).
LEAD = dt.timedelta(minutes=15)
# When no retry is coming (a hard decline stopped them, or the last one failed): soon, but not in
# the same minute as the message that told of the failure.
WITHOUT_RETRY = dt.timedelta(hours=1)


class Refusal(enum.StrEnum):
    """Why the backup card is not charged (for logs and staff; the customer is not told)."""

    NO_BACKUP = "no_backup"
    NO_CONSENT = "no_consent"
    CARD_GONE = "card_gone"
    SAME_CARD = "same_card"
    CARD_REFUSED = "card_refused"
    ALREADY_TRIED = "already_tried"
    NOT_OPEN = "not_open"


def backup_refusal(
    *,
    backup_card_id: str,
    consent_at: dt.datetime | None,
    card_on_file: bool,
    failed_card_ids: frozenset[str],
    networks_refuse: bool,
    tried_at: dt.datetime | None,
    case_open: bool,
) -> Refusal | None:
    """Why the backup card may not pay the case's invoice now, or None if it may.

    `card_on_file`: the card is still the customer's (mirrored); `failed_card_ids`: the cards the
    invoice's payments failed on (a backup that is one of them would only fail again);
    `networks_refuse`: billing.services.recovery.card_refusal for the backup card."""
    if not case_open:
        return Refusal.NOT_OPEN
    if tried_at is not None:
        return Refusal.ALREADY_TRIED
    if not backup_card_id:
        return Refusal.NO_BACKUP
    if consent_at is None:
        return Refusal.NO_CONSENT
    if not card_on_file:
        return Refusal.CARD_GONE
    if backup_card_id in failed_card_ids:
        return Refusal.SAME_CARD
    if networks_refuse:
        return Refusal.CARD_REFUSED
    return None


def backup_due(*, failed_at: dt.datetime, next_retry_at: dt.datetime | None) -> dt.datetime:
    """When the backup card is charged: just before Stripe's next automatic retry of the default
    card, so that it is the next attempt; an hour after the failure if no retry is coming (a hard
    decline), so the backup is used promptly; never before the failure itself."""
    if next_retry_at is not None and next_retry_at > failed_at:
        return max(failed_at, next_retry_at - LEAD)
    return failed_at + WITHOUT_RETRY
