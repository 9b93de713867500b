"""The billing engine's tables, by concern: the catalog, the customer, the mirrors of Stripe, and
the three durable records (changes sent to Stripe, events received from it, deliveries of
messages to customers).

Money is integer minor units with an ISO currency; datetimes are aware and stored in UTC.
"""

from billing.models.catalog import Interval, Price, Tier
from billing.models.changes import BillingChange
from billing.models.customers import BillingCustomer, Language
from billing.models.extensions import Extension
from billing.models.feedback import CancellationFeedback
from billing.models.inbox import StripeEvent
from billing.models.jobs import JobCursor
from billing.models.mirror import Invoice, PaymentMethod, Subscription
from billing.models.outbox import Delivery
from billing.models.recovery import LinkEvent, PaymentAttempt, RecoveryCase, RecoveryPolicy

__all__ = [
    "BillingChange",
    "BillingCustomer",
    "CancellationFeedback",
    "Delivery",
    "Extension",
    "Interval",
    "Invoice",
    "JobCursor",
    "Language",
    "LinkEvent",
    "PaymentAttempt",
    "PaymentMethod",
    "Price",
    "RecoveryCase",
    "RecoveryPolicy",
    "StripeEvent",
    "Subscription",
    "Tier",
]
