# The same fixtures as the billing tests.
from tests.billing.conftest import catalog, committed, deliver  # noqa: F401
