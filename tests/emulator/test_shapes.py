"""Object shapes: the emulator must return the fields Stripe returns, and nothing the client can't know.

The contract, for every object: each field of Stripe's published example for its type
(``stripe_fixtures.json``, a verbatim subset of Stripe's ``openapi/fixtures3.json``, MIT, see
``LICENSE.stripe-openapi``) that the pinned ``stripe`` package still declares must be present, and
no field the package doesn't declare may be.  Where the two disagree the package wins, being newer.
Nested objects are held to the same rule through the package's nested classes.

``assert_shape`` applies the rule to any JSON the emulator returns; the static tests apply it to
the templates in ``stripe_emulator.shapes`` and the live test to every response of a broad
billing scenario driven through the official client.
"""

from __future__ import annotations

import ast
import copy
import json
import pathlib
import re
import time
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from stripe._list_object import ListObject
from stripe._object_classes import OBJECT_CLASSES, get_object_class
from stripe._search_result_object import SearchResultObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

from stripe_emulator import shapes
from stripe_emulator.shapes import blank

HERE = pathlib.Path(__file__).parent
FIXTURES: dict[str, dict[str, Any]] = json.loads((HERE / "stripe_fixtures.json").read_text())["resources"]

#: Every object type the emulator makes, by its ``"object"`` value.
TYPES = (
    "product",
    "price",
    "plan",
    "customer",
    "tax_id",
    "payment_method",
    "setup_intent",
    "payment_intent",
    "charge",
    "subscription",
    "subscription_item",
    "subscription_schedule",
    "invoice",
    "line_item",
    "invoice_payment",
    "invoiceitem",
    "test_helpers.test_clock",
    "event",
    "webhook_endpoint",
)

#: Containers whose contents are data (metadata, lists), not fields of a nested object.
_OPAQUE = (ListObject, SearchResultObject, UntypedStripeObject)
_LIST_KEYS = frozenset({"object", "data", "has_more", "url"})


# the rule -------------------------------------------------------------------------------


def declared_fields(cls: type[StripeObject]) -> dict[str, Any]:
    """The fields a stripe class declares, with their annotations (its own, not inherited ones)."""
    annotations: dict[str, Any] = vars(cls).get("__annotations__", {})
    return {
        key: annotation
        for key, annotation in annotations.items()
        if key != "OBJECT_NAME" and typing.get_origin(annotation) is not typing.ClassVar
    }


def nested_class(annotation: Any) -> type[StripeObject] | None:
    """The nested object class a field holds, directly, optionally or as list items.

    Forward references name top-level resources (those carry their own ``"object"`` and are
    checked on their own); ``Dict``/metadata-like containers hold data, not fields.
    """
    origin = typing.get_origin(annotation)
    if origin is None:
        if (
            isinstance(annotation, type)
            and issubclass(annotation, StripeObject)
            and not issubclass(annotation, _OPAQUE)
            and vars(annotation).get("__annotations__")
        ):
            return annotation
        return None
    if origin is dict or (isinstance(origin, type) and issubclass(origin, _OPAQUE)):
        return None
    for arg in typing.get_args(annotation):
        found = nested_class(arg)
        if found is not None:
            return found
    return None


def field_problems(
    value: dict[str, Any], cls: type[StripeObject], example: dict[str, Any] | None, path: str
) -> list[str]:
    """What breaks the rule in ``value`` (an object or nested object shown as ``cls``)."""
    declared = declared_fields(cls)
    problems = [
        f"{path}.{key}: not declared by stripe {cls.__qualname__}"
        for key in sorted(set(value) - set(declared))
    ]
    if example is not None:
        problems += [
            f"{path}.{key}: missing (in Stripe's example and declared by stripe {cls.__qualname__})"
            for key in sorted((set(example) & set(declared)) - set(value))
        ]
    for key, sub in value.items():
        nested = nested_class(declared[key]) if key in declared else None
        if nested is None:
            continue
        sub_example = example.get(key) if example is not None else None
        if isinstance(sub_example, list):
            sub_example = next((item for item in sub_example if isinstance(item, dict)), None)
        items = list(enumerate(sub)) if isinstance(sub, list) else [(None, sub)]
        for index, item in items:
            # An item with its own "object" is a separate resource: the walker checks it by type.
            if isinstance(item, dict) and "object" not in item:
                where = f"{path}.{key}" if index is None else f"{path}.{key}[{index}]"
                problems += field_problems(
                    item, nested, sub_example if isinstance(sub_example, dict) else None, where
                )
    return problems


def objects_in(value: Any, path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict with an ``"object"`` in a response, however deep (lists, expansions, events).

    An event's ``data.previous_attributes`` holds fragments of the old object, not objects, and
    metadata is the user's data: neither is walked.
    """
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from objects_in(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("object"), str):
        yield path, value
    for key, sub in value.items():
        if key == "metadata":
            continue
        if key == "data" and value.get("object") == "event" and isinstance(sub, dict):
            yield from objects_in(sub.get("object"), f"{path}.data.object")
            continue
        yield from objects_in(sub, f"{path}.{key}")


def shape_problems(response: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for path, obj in objects_in(response):
        name = obj["object"]
        where = f"{path}<{name}>"
        if name in ("list", "search_result"):
            missing = sorted(_LIST_KEYS - set(obj))
            if missing:
                problems.append(f"{where}: list without {missing}")
            if not isinstance(obj.get("data"), list):
                problems.append(f"{where}.data: not a list")
            continue
        if name not in OBJECT_CLASSES:
            problems.append(f"{where}: the stripe package knows no object type {name!r}")
            continue
        cls = get_object_class("V1", name)
        example = FIXTURES.get(f"deleted_{name}" if obj.get("deleted") is True else name)
        problems += field_problems(obj, cls, example, where)
    return problems


def assert_shape(obj: dict[str, Any]) -> None:
    """Fail, listing every problem, unless each object in ``obj`` has the fields Stripe's does."""
    problems = shape_problems(obj)
    assert not problems, "shape problems:\n  " + "\n  ".join(problems)


# the templates --------------------------------------------------------------------------


@pytest.mark.parametrize("name", TYPES)
def test_template_has_stripes_fields_and_no_others(name: str) -> None:
    template = blank(name)
    assert template["object"] == name
    problems = field_problems(template, get_object_class("V1", name), FIXTURES[name], name)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", TYPES)
def test_template_is_a_fresh_test_mode_object(name: str) -> None:
    template = blank(name)
    declared = declared_fields(get_object_class("V1", name))
    assert "deleted" not in template
    if "livemode" in declared:  # subscription items, for one, have no livemode
        assert template["livemode"] is False
    if "metadata" in declared:
        assert template["metadata"] == {}
    # Each call is independent: resources mutate nested parts in place.
    again = blank(name)
    for value in template.values():
        if isinstance(value, dict | list):
            value.clear()
    assert again == blank(name)


def _fixture_placeholders() -> tuple[set[str], set[int]]:
    """Values from Stripe's examples that are made up (ids, timestamps, amounts, names)."""
    strings = {
        "obj_123",
        "currency",
        "invoice",
        "invoice_item",
        "invoice_line_items",
        "subscription",
        "subscription_item",
        "type",
        "status",
        "flow",
        "key",
        "action",
        "client_secret",
    }
    numbers: set[int] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for sub in value.values():
                collect(sub)
        elif isinstance(value, list):
            for sub in value:
                collect(sub)
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int) and value > 1:
            numbers.add(value)
        elif isinstance(value, str) and any(c.isdigit() or c in "@ /" for c in value):
            strings.add(value)

    collect(FIXTURES)
    return strings, numbers


@pytest.mark.parametrize("name", TYPES)
def test_template_keeps_no_placeholder_from_the_examples(name: str) -> None:
    strings, numbers = _fixture_placeholders()
    found: list[str] = []

    def scan(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                scan(sub, f"{path}.{key}")
        elif isinstance(value, list):
            for index, sub in enumerate(value):
                scan(sub, f"{path}[{index}]")
        elif isinstance(value, bool) or path == f"{name}.object":
            pass
        elif (isinstance(value, int) and value in numbers) or (isinstance(value, str) and value in strings):
            found.append(f"{path} = {value!r}")

    scan(blank(name), name)
    assert not found, found


def _at(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for key in dotted.split("."):
        value = value[key]
    return value


#: Values a new object has at Stripe that the portal relies on (and that the examples get wrong).
NEW_OBJECT_VALUES: list[tuple[str, str, Any]] = [
    ("subscription", "billing_mode", {"type": "flexible", "flexible": {"proration_discounts": "included"}}),
    ("subscription", "automatic_tax", {"enabled": False, "liability": None, "disabled_reason": None}),
    ("subscription", "pause_collection", None),
    ("subscription", "billing_cycle_anchor_config", None),
    ("subscription", "pending_update", None),
    ("subscription", "status_details", None),
    ("subscription", "schedule", None),
    ("subscription", "trial_start", None),
    ("subscription", "trial_end", None),
    ("subscription", "cancel_at_period_end", False),
    ("subscription", "cancel_at", None),
    ("subscription", "items.object", "list"),
    ("subscription_item", "current_period_start", None),
    ("subscription_item", "current_period_end", None),
    ("subscription_schedule", "billing_mode.type", "flexible"),
    ("price", "transform_quantity", None),
    ("price", "custom_unit_amount", None),
    ("plan", "transform_usage", None),
    ("customer", "invoice_settings.default_payment_method", None),
    ("customer", "discount", None),
    ("customer", "preferred_locales", []),
    (
        "invoice",
        "status_transitions",
        {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
    ),
    ("invoice", "automatic_tax.enabled", False),
    ("invoice", "parent", None),
    ("invoice", "payments", None),
    ("invoice", "confirmation_secret", None),
    ("invoice", "status_details", None),
    ("invoice", "last_finalization_error", None),
    ("invoice", "lines.object", "list"),
    ("setup_intent", "next_action", None),
    ("setup_intent", "last_setup_error", None),
    ("payment_intent", "next_action", None),
    ("payment_intent", "last_payment_error", None),
    ("test_helpers.test_clock", "status_details", {}),
    ("event", "request", {"id": None, "idempotency_key": None}),
]


@pytest.mark.parametrize(
    ("name", "path", "expected"), NEW_OBJECT_VALUES, ids=[f"{n}.{p}" for n, p, _ in NEW_OBJECT_VALUES]
)
def test_template_value_of_a_new_object(name: str, path: str, expected: Any) -> None:
    assert _at(blank(name), path) == expected


#: Declared fields Stripe's examples lack, or the package dropped, and the choice made for them.
@pytest.mark.parametrize(
    ("name", "present", "absent"),
    [
        ("invoice", {"parent", "payments", "confirmation_secret", "status_details"}, {"subscription"}),
        (
            "subscription",
            {"billing_mode", "status_details", "pending_update", "schedule", "start_date"},
            set(),
        ),
        # Included only on request (``expand[]``/``include[]``) at Stripe.
        (
            "customer",
            set(),
            {"sources", "subscriptions", "tax_ids", "cash_balance", "invoice_credit_balance"},
        ),
        ("price", set(), {"currency_options", "tiers"}),
        ("plan", set(), {"tiers"}),
        ("webhook_endpoint", set(), {"secret"}),
    ],
)
def test_template_field_choices(name: str, present: set[str], absent: set[str]) -> None:
    template = blank(name)
    assert present <= set(template)
    assert not absent & set(template)


def test_unknown_type_is_an_error() -> None:
    with pytest.raises(KeyError, match="no template"):
        blank("not_a_type")


def test_shapes_module_reads_no_files() -> None:
    """The emulator ships alone: templates are literals, not data loaded at runtime."""
    tree = ast.parse(pathlib.Path(shapes.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not imported & {"json", "pathlib", "os", "importlib", "pkgutil", "io"}
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert "open" not in calls


def test_vendored_examples_are_the_types_and_their_deletions() -> None:
    expected = set(TYPES) | {f"deleted_{name}" for name in TYPES if f"deleted_{name}" in FIXTURES}
    assert set(FIXTURES) == expected
    assert (HERE / "LICENSE.stripe-openapi").read_text().startswith("The MIT License")


# the checker itself ---------------------------------------------------------------------


def _subscription_with_item() -> dict[str, Any]:
    sub = blank("subscription")
    item = blank("subscription_item")
    item["price"] = blank("price")
    item["plan"] = blank("plan")
    sub["items"]["data"].append(item)
    return sub


def _break(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with ``path`` set to ``value``, or removed when ``value`` is ``...``."""
    broken = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target: Any = broken
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return broken


#: Responses that break the rule, each with (part of) the problem the checker must name.
BROKEN: list[tuple[str, dict[str, Any], str]] = [
    (
        "field dropped by the package",
        _break(blank("invoice"), "subscription", None),
        ".subscription: not declared",
    ),
    (
        "example field missing",
        _break(blank("invoice"), "status_transitions", ...),
        ".status_transitions: missing",
    ),
    (
        "undeclared nested field",
        _break(blank("invoice"), "status_transitions.sent_at", None),
        "sent_at: not declared by stripe Invoice.StatusTransitions",
    ),
    (
        "nested example field missing",
        _break(blank("invoice"), "status_transitions.paid_at", ...),
        ".status_transitions.paid_at: missing",
    ),
    (
        "undeclared field in a list item",
        _break(_subscription_with_item(), "items.data.0.current_period", {}),
        "$.items.data[0]<subscription_item>.current_period: not declared",
    ),
    (
        "missing field in an embedded plan",
        _break(_subscription_with_item(), "items.data.0.plan.interval", ...),
        "$.items.data[0].plan<plan>.interval: missing",
    ),
    ("list without url", _break(blank("invoice"), "lines.url", ...), "$.lines<list>: list without ['url']"),
    ("unknown object type", {"object": "frobnicator", "id": "x"}, "no object type 'frobnicator'"),
    (
        "bad object inside an event",
        _break(blank("event"), "data.object", _break(blank("price"), "tiers_count", 1)),
        "$.data.object<price>.tiers_count: not declared",
    ),
    (
        "deleted object with an undeclared field",
        {"id": "prod_1", "object": "product", "deleted": True, "gone": 1},
        ".gone: not declared",
    ),
    ("deleted object missing its flag", {"id": "prod_1", "object": "product"}, ".name: missing"),
]


@pytest.mark.parametrize(("obj", "problem"), [(o, p) for _, o, p in BROKEN], ids=[c for c, _, _ in BROKEN])
def test_assert_shape_catches(obj: dict[str, Any], problem: str) -> None:
    with pytest.raises(AssertionError, match=re.escape(problem)):
        assert_shape(obj)


def test_assert_shape_accepts_well_formed_responses() -> None:
    event = blank("event")
    event["data"] = {
        "object": _subscription_with_item(),
        # Fragments of the old object: not held to the rule.
        "previous_attributes": {"items": {"data": [{"object": "subscription_item", "quantity": 2}]}},
    }
    assert_shape(event)
    assert_shape({"id": "prod_1", "object": "product", "deleted": True})
    for name in TYPES:
        assert_shape(blank(name))


# the emulator, live ---------------------------------------------------------------------


class Recorder:
    """Keeps the raw JSON of every response, to check it the way the client received it."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, label: str, obj: StripeObject) -> Any:
        response = obj.last_response
        assert response is not None, f"{label}: no response recorded"
        raw = json.loads(response.body)
        assert isinstance(raw, dict), f"{label}: {raw!r}"
        self.responses.append((label, raw))
        return obj

    def declined(self, label: str, call: Callable[[], object]) -> stripe.CardError:
        """Make a call Stripe answers with a card error, keeping the error body: it embeds objects."""
        with pytest.raises(stripe.CardError) as caught:
            call()
        body = caught.value.json_body
        assert isinstance(body, dict), f"{label}: {body!r}"
        self.responses.append((label, body))
        return caught.value

    def problems(self) -> list[str]:
        return [f"{label}: {problem}" for label, raw in self.responses for problem in shape_problems(raw)]

    def types_seen(self) -> set[str]:
        return {
            ("deleted " if obj.get("deleted") is True else "") + obj["object"]
            for _, raw in self.responses
            for _, obj in objects_in(raw)
        }


def test_every_object_the_emulator_returns_has_stripes_shape(client: stripe.StripeClient) -> None:
    record = Recorder()
    v1 = client.v1

    product = record(
        "create product", v1.products.create(params={"name": "Pro", "metadata": {"tier": "pro"}})
    )
    price = record(
        "create price",
        v1.prices.create(
            params={
                "product": product.id,
                "currency": "eur",
                "unit_amount": 1500,
                "recurring": {"interval": "month"},
            }
        ),
    )
    record("list prices", v1.prices.list(params={"product": product.id}))
    scrap = v1.products.create(params={"name": "Scrap"})
    record("delete product", v1.products.delete(scrap.id))

    customer = record(
        "create customer", v1.customers.create(params={"email": "ada@example.org", "name": "Ada"})
    )
    pm = record("attach", v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id}))
    record(
        "set default",
        v1.customers.update(
            customer.id,
            params={
                "invoice_settings": {"default_payment_method": pm.id},
            },
        ),
    )
    tax_id = record(
        "create tax id",
        v1.customers.tax_ids.create(
            customer.id,
            params={
                "type": "eu_vat",
                "value": "DE123456789",
            },
        ),
    )
    record("list tax ids", v1.customers.tax_ids.list(customer.id))
    record("delete tax id", v1.customers.tax_ids.delete(customer.id, tax_id.id))
    record("list payment methods", v1.customers.payment_methods.list(customer.id))

    sub = record(
        "create subscription",
        v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": price.id}],
                "billing_mode": {"type": "flexible"},
                "expand": ["latest_invoice.payments", "customer"],
            }
        ),
    )
    record("retrieve subscription", v1.subscriptions.retrieve(sub.id))
    record("list subscriptions", v1.subscriptions.list(params={"customer": customer.id}))
    record("list subscription items", v1.subscription_items.list(params={"subscription": sub.id}))
    record("create schedule", v1.subscription_schedules.create(params={"from_subscription": sub.id}))

    invoices = record("list invoices", v1.invoices.list(params={"customer": customer.id}))
    assert invoices.data, "the subscription made no invoice"
    invoice = record(
        "retrieve invoice",
        v1.invoices.retrieve(
            invoices.data[0].id,
            params={
                "expand": ["payments"],
            },
        ),
    )
    record("list lines", v1.invoices.line_items.list(invoice.id))
    payments = invoice.payments.data if invoice.payments else []
    assert payments, "the paid invoice lists no payment"
    intent_id = payments[0].payment.payment_intent
    assert isinstance(intent_id, str), payments[0]
    record(
        "retrieve payment intent",
        v1.payment_intents.retrieve(intent_id, params={"expand": ["latest_charge"]}),
    )

    record(
        "create invoice item",
        v1.invoice_items.create(
            params={
                "customer": customer.id,
                "amount": 500,
                "currency": "eur",
                "description": "Setup fee",
            }
        ),
    )

    intent = record(
        "create setup intent",
        v1.setup_intents.create(
            params={
                "customer": customer.id,
                # This API version takes the allowed types; the response lists payment_method_types.
                "allowed_payment_method_types": ["card"],
                "usage": "off_session",
            }
        ),
    )
    record(
        "confirm setup intent",
        v1.setup_intents.confirm(
            intent.id,
            params={
                "payment_method": "pm_card_mastercard",
            },
        ),
    )

    clock = record(
        "create test clock", v1.test_helpers.test_clocks.create(params={"frozen_time": 1_900_000_000})
    )
    record("retrieve test clock", v1.test_helpers.test_clocks.retrieve(clock.id))
    record("delete test clock", v1.test_helpers.test_clocks.delete(clock.id))

    endpoint = record(
        "create webhook endpoint",
        v1.webhook_endpoints.create(
            params={
                "url": "https://portal.example.org/stripe/webhook",
                "enabled_events": ["*"],
            }
        ),
    )
    record("list webhook endpoints", v1.webhook_endpoints.list())
    record("delete webhook endpoint", v1.webhook_endpoints.delete(endpoint.id))

    # Every event so far, each with the object as it was then.
    page = record("list events", v1.events.list(params={"limit": 100}))
    while page.has_more:
        page = record(
            "list events", v1.events.list(params={"limit": 100, "starting_after": page.data[-1].id})
        )

    problems = record.problems()
    assert not problems, f"{len(problems)} shape problems:\n  " + "\n  ".join(problems)
    missing = {
        *TYPES,
        "list",
        "deleted product",
        "deleted tax_id",
        "deleted test_helpers.test_clock",
        "deleted webhook_endpoint",
    } - record.types_seen()
    assert not missing, f"the scenario never saw {sorted(missing)}"


def _advance(client: stripe.StripeClient, record: Recorder, clock_id: str, to: int) -> None:
    """Advance a test clock and wait for it, as Stripe's advancing is asynchronous."""
    record(
        "advance test clock", client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": to})
    )
    deadline = time.monotonic() + 30
    while True:
        clock = record("poll test clock", client.v1.test_helpers.test_clocks.retrieve(clock_id))
        if clock.status == "ready":
            return
        assert time.monotonic() < deadline, "the test clock never became ready"
        time.sleep(0.05)


def test_objects_through_a_subscription_lifecycle_have_stripes_shape(client: stripe.StripeClient) -> None:
    """Trials, renewals, prorations, pauses, failed payments and schedules build objects the
    simple scenario never sees (proration lines, errors, next actions, phases)."""
    record = Recorder()
    v1 = client.v1
    day = 86_400
    start = int(time.time())

    product = v1.products.create(params={"name": "Team"})
    basic = v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
        }
    )
    plus = v1.prices.create(
        params={
            "product": product.id,
            "currency": "eur",
            "unit_amount": 3000,
            "recurring": {"interval": "month"},
        }
    )
    clock = record("create test clock", v1.test_helpers.test_clocks.create(params={"frozen_time": start}))
    customer = record(
        "create customer with card",
        v1.customers.create(
            params={
                "test_clock": clock.id,
                "email": "grace@example.org",
                "payment_method": "pm_card_visa",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        ),
    )
    sub = record(
        "subscribe with trial",
        v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": basic.id}], "trial_period_days": 7}
        ),
    )
    _advance(client, record, clock.id, start + 8 * day)  # the trial ends: first paid invoice
    sub = record("retrieve after trial", v1.subscriptions.retrieve(sub.id))
    record(
        "preview upgrade",
        v1.invoices.create_preview(
            params={
                "customer": customer.id,
                "subscription": sub.id,
                "subscription_details": {"items": [{"id": sub["items"].data[0].id, "price": plus.id}]},
            }
        ),
    )
    record(
        "upgrade",
        v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": sub["items"].data[0].id, "price": plus.id}],
                "proration_behavior": "always_invoice",
                "expand": ["latest_invoice.payments"],
            },
        ),
    )
    record(
        "preview renewal",
        v1.invoices.create_preview(params={"customer": customer.id, "subscription": sub.id}),
    )
    record(
        "pause collection", v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void"}})
    )
    record("unpause collection", v1.subscriptions.update(sub.id, params={"pause_collection": ""}))
    record("pause", v1.subscriptions.pause(sub.id, params={"type": "subscription"}))
    record("resume", v1.subscriptions.resume(sub.id))
    record("cancel at period end", v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True}))
    _advance(client, record, clock.id, start + 45 * day)  # past the period end: canceled
    record("list invoices", v1.invoices.list(params={"customer": customer.id, "limit": 100}))
    record("list charges", v1.charges.list(params={"customer": customer.id, "limit": 100}))

    # A card that attaches but declines charges: an incomplete subscription with errors.
    declining = v1.customers.create(params={"email": "fails@example.org"})
    v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": declining.id})
    failed = record(
        "subscribe, payment fails",
        v1.subscriptions.create(
            params={
                "customer": declining.id,
                "items": [{"price": basic.id}],
                "default_payment_method": v1.customers.payment_methods.list(declining.id).data[0].id,
                "payment_behavior": "default_incomplete",
                "expand": ["latest_invoice.payments"],
            }
        ),
    )
    invoice_id = failed.latest_invoice.id
    record.declined("pay, declined", lambda: v1.invoices.pay(invoice_id))
    record("retrieve failed invoice", v1.invoices.retrieve(invoice_id, params={"expand": ["payments"]}))
    record("list payment intents", v1.payment_intents.list(params={"customer": declining.id}))
    record("list failed charges", v1.charges.list(params={"customer": declining.id}))
    record("void", v1.invoices.void_invoice(invoice_id))

    # 3-D Secure on setup: a SetupIntent that needs an action.
    intent = v1.setup_intents.create(
        params={"customer": declining.id, "allowed_payment_method_types": ["card"]}
    )
    record(
        "confirm, needs 3DS",
        v1.setup_intents.confirm(
            intent.id,
            params={
                "payment_method": "pm_card_authenticationRequiredOnSetup",
                "return_url": "https://example.org",
            },
        ),
    )

    # A schedule with explicit phases: this phase, then an upgrade.
    scheduled = v1.customers.create(
        params={
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    base = v1.subscriptions.create(params={"customer": scheduled.id, "items": [{"price": basic.id}]})
    schedule = record(
        "create schedule", v1.subscription_schedules.create(params={"from_subscription": base.id})
    )
    record(
        "schedule an upgrade",
        v1.subscription_schedules.update(
            schedule.id,
            params={
                "phases": [
                    {
                        "items": [{"price": basic.id}],
                        "start_date": schedule.phases[0].start_date,
                        "end_date": schedule.phases[0].end_date,
                    },
                    {"items": [{"price": plus.id, "quantity": 2}], "duration": {"interval": "month"}},
                ],
            },
        ),
    )
    record("preview the scheduled upgrade", v1.invoices.create_preview(params={"schedule": schedule.id}))
    record("release schedule", v1.subscription_schedules.release(schedule.id))

    page = record("list events", v1.events.list(params={"limit": 100}))
    while page.has_more:
        page = record(
            "list events", v1.events.list(params={"limit": 100, "starting_after": page.data[-1].id})
        )

    problems = record.problems()
    assert not problems, f"{len(problems)} shape problems:\n  " + "\n  ".join(problems)
