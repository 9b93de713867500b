"""API resources; importing this package registers every route and view."""

from . import (  # noqa: F401
    catalog,
    clocks,
    customers,
    events,
    intents,
    invoiceitems,
    invoices,
    payment_methods,
    schedules,
    subscriptions,
)
