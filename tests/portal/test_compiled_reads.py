"""The pages' compiled reads (billing/reads.py) give what the querysets they were compiled from
give, for the customer asked about and for no other, on SQLite and on PostgreSQL alike: the same
rows in the same order, the same values of the same types, the same annotations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from billing import selectors
from billing.models import BillingCustomer, Delivery, PaymentMethod, Price, Subscription, Tier
from billing.reads import CustomerRead
from billing.reads import together as reads_together
from tests.billing.support import add_mirror_rows, mirror_customer

pytestmark = pytest.mark.django_db

READS: dict[str, CustomerRead[Any]] = {
    "subscriptions": selectors._SUBSCRIPTIONS,
    "cards": selectors._CARDS,
    "open invoices": selectors._OPEN_INVOICES,
    "open changes": selectors._OPEN_CHANGES,
    "recent messages": selectors._RECENT_MESSAGES,
}


def _as_read(instance: Any) -> dict[str, Any]:
    """Everything an instance holds, with the type of each value (an int is not a bool)."""
    state = (instance._state.db, instance._state.adding)
    values = {name: (type(value), value) for name, value in vars(instance).items() if name != "_state"}
    return {"state": state, **values}


def _two_customers() -> tuple[BillingCustomer, BillingCustomer]:
    mine = mirror_customer(email="mine@example.com", cards=4, invoices=9)
    # More open changes and messages than the dashboard lists, so limits and order are tested.
    add_mirror_rows(customer=mine, cards=0, invoices=96)
    theirs = mirror_customer(email="theirs@example.com", cards=3, invoices=9)
    add_mirror_rows(customer=theirs, cards=0, invoices=96)
    Subscription.objects.create(
        **{
            **Subscription.objects.filter(customer=mine).values().get(),
            "id": None,
            "stripe_id": "sub_older",
            "status": Subscription.Status.CANCELED,
            "price_id": None,
        }
    )
    return mine, theirs


@pytest.mark.parametrize("name", READS)
def test_a_compiled_read_gives_its_querysets_rows_for_that_customer_only(name: str) -> None:
    mine, theirs = _two_customers()
    read = READS[name]
    for customer in (mine, theirs, mine):
        got = read(customer_id=customer.pk)
        assert [_as_read(row) for row in got] == [_as_read(row) for row in read.queryset(customer.pk)]
        assert got, "nothing to compare: the customer should have rows of each kind"
        assert {row.customer_id for row in got} == {customer.pk}
    assert len(selectors._RECENT_MESSAGES(customer_id=mine.pk)) == selectors.RECENT_MESSAGES
    assert len(selectors._SUBSCRIPTIONS(customer_id=mine.pk)) == 2


def test_the_current_subscription_brings_its_price_and_tier_in_its_own_query() -> None:
    customer = mirror_customer(email="plan@example.com")
    with CaptureQueriesContext(connection) as queries:
        sub = selectors.current_subscription(customer=customer)
        assert sub is not None and sub.price is not None
        shown = (sub.price.tier.name, sub.price.get_interval_display(), sub.price.interval)
    assert len(queries) == 1

    # The very row the database has for that price, and its tier.
    price = Price.objects.select_related("tier").get(pk=Subscription.objects.get(customer=customer).price_id)
    assert (sub.price, sub.price.tier) == (price, price.tier)
    assert shown == (price.tier.name, price.get_interval_display(), price.interval)
    assert not hasattr(sub, "plan_tier_name")

    # Read with the subscription, not kept: sync_catalog renames a tier in place.
    Tier.objects.filter(pk=price.tier_id).update(name="Standard Plus")
    renamed = selectors.current_subscription(customer=customer)
    assert renamed is not None and renamed.price is not None
    assert renamed.price.tier.name == "Standard Plus"


def test_a_subscription_without_a_catalog_price_has_none() -> None:
    customer = mirror_customer(email="noprice@example.com")
    Subscription.objects.filter(customer=customer).update(price=None)
    with CaptureQueriesContext(connection) as queries:
        sub = selectors.current_subscription(customer=customer)
        assert sub is not None and sub.price is None
    assert len(queries) == 1


@pytest.mark.parametrize(
    "queryset",
    [
        pytest.param(lambda customer_id: PaymentMethod.objects.all(), id="not scoped"),
        pytest.param(
            lambda customer_id: PaymentMethod.objects.filter(Q(customer_id=customer_id) | Q(pk=customer_id)),
            id="the id twice",
        ),
        pytest.param(
            lambda customer_id: PaymentMethod.objects.filter(customer_id=customer_id).select_related(
                "customer"
            ),
            id="select_related",
        ),
        pytest.param(
            lambda customer_id: PaymentMethod.objects.filter(customer_id=customer_id).values("pk"),
            id="values",
        ),
        pytest.param(
            lambda customer_id: Delivery.objects.filter(customer_id=customer_id), id="another model"
        ),
    ],
)
def test_a_read_not_scoped_to_one_customer_or_not_of_plain_rows_is_refused(
    queryset: Callable[[int], Any],
) -> None:
    with pytest.raises(ValueError):
        CustomerRead(PaymentMethod, queryset)(customer_id=1)


def test_reads_together_give_what_each_gives_alone_one_statement_each() -> None:
    """The dashboard's reads go to the database together (one round trip on PostgreSQL): the same
    instances as read one by one, and still one SQL statement per read, counted as such."""
    mine, theirs = _two_customers()
    reads = list(READS.values())
    for customer in (mine, theirs):
        alone = [[_as_read(i) for i in read(customer_id=customer.pk)] for read in reads]
        with CaptureQueriesContext(connection) as queries:
            together = reads_together(customer.pk, *reads)
        assert [[_as_read(i) for i in found] for found in together] == alone
        assert len(queries) == len(reads)
    # The dashboard's view model reads everything this way, and shows the same as read lazily.
    lazy = selectors.dashboard(customer=mine)
    eager = selectors.dashboard(customer=mine).read_all()
    for part in ("subscription", "cards", "open_invoices", "messages", "default_card", "backup_card"):
        assert repr(getattr(eager, part)) == repr(getattr(lazy, part)), part
    assert [v.change.pk for v in eager.open_changes] == [v.change.pk for v in lazy.open_changes]


def test_reads_are_logged_with_their_sql_and_survive_a_change_of_schema() -> None:
    """On PostgreSQL the reads run as statements the server keeps prepared: the query log still
    shows their SQL, and a migration that changes a column under a prepared read (here the type of
    a column it returns) leaves the next read correct, not failing on a stale statement."""
    customer = mirror_customer(email="schema@example.com", cards=2)
    with CaptureQueriesContext(connection) as queries:
        before = selectors._CARDS(customer_id=customer.pk)
    assert len(queries) == 1 and 'FROM "billing_paymentmethod"' in (queries[0]["sql"] or "")
    change = (
        'ALTER TABLE "billing_paymentmethod" ALTER COLUMN "last4" TYPE varchar(12)'
        if connection.vendor == "postgresql"
        else 'ALTER TABLE "billing_paymentmethod" ADD COLUMN "extra" integer NULL'
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the rows just made, checked now
        cursor.execute(change)
    after = selectors._CARDS(customer_id=customer.pk)
    assert [_as_read(card) for card in after] == [_as_read(card) for card in before]
