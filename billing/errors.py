"""The project's own errors for what Stripe answers, so nothing outside the gateway knows `stripe`."""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error the gateway raises."""

    code = "error"

    def __init__(self, message: str = "", *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class CardDeclined(BillingError):
    """The card was refused; `decline_code` is Stripe's reason (insufficient_funds, ...)."""

    code = "card_declined"

    def __init__(self, message: str = "", *, code: str = "", decline_code: str = "") -> None:
        super().__init__(message, code=code or "card_declined")
        self.decline_code = decline_code


class ActionRequired(BillingError):
    """The bank wants the customer to authenticate (3-D Secure); the browser needs the secret."""

    code = "action_required"

    def __init__(self, message: str = "", *, client_secret: str, intent_id: str = "") -> None:
        super().__init__(message)
        self.client_secret = client_secret
        self.intent_id = intent_id


class StripeUnavailable(BillingError):
    """Stripe could not be reached or answered 5xx / 409 / 429: the work waits and is retried."""

    code = "connection_error"


# The codes StripeUnavailable carries: a change or event with one of these waits for Stripe.
OUTAGE_CODES = frozenset({"connection_error", "api_error", "rate_limited", "conflict"})


class InvalidRequest(BillingError):
    """Stripe refused the request as such; retrying it unchanged won't help."""

    code = "invalid_request"


class WebhookRejected(BillingError):
    """A webhook whose signature, timestamp, body or API version we don't accept."""

    code = "webhook_rejected"


class Refused(Exception):
    """A change that policy does not allow; the message is for the customer, in their language."""
