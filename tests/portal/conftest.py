# The same fixtures as the billing tests.
from tests.billing.conftest import catalog, committed, deliver, stripe_down  # noqa: F401
