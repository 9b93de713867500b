"""Bad input gets a clear answer and changes nothing: hostile values posted to every endpoint of the
site, a login without a billing customer, overlong email addresses, unsafe redirects; every page
carries a Content-Security-Policy; the admin can look but not touch."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from billing.models import BillingChange, BillingCustomer, PaymentMethod
from tests.billing.support import mirror_snapshot
from tests.portal_support import logged_in, make_customer

pytestmark = pytest.mark.usefixtures("catalog")

HOSTILE = [
    "ünïcødé ✓ 中文 🙂",
    "line one\r\nSet-Cookie: evil=1\r\n",
    "nul\x00byte",
    "x" * 10_000,
    "-1",
    "1e999",
    "../../etc/passwd",
    "javascript:alert(1)",
    "//evil.example/",
    "<script>alert(1)</script>",
]
# Every field any of our forms or allauth's reads, and some no form has.
FIELDS = [
    "setup_intent", "attempt", "token", "consent", "language", "next", "login", "password", "remember",
    "email", "password1", "password2", "oldpassword", "code", "action_remove", "action_primary",
    "action_send", "unknown_field", "csrfmiddlewaretoken",
]  # fmt: skip


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def _concrete(route: str, *, card_id: int, change_id: str) -> str:
    """A URL for a route, its parameters filled with real ids of the customer's (so that the
    view gets past its lookups to the values it must check)."""
    path = route.replace("<int:card_id>", str(card_id)).replace("<uuid:change_id>", change_id)
    path = path.replace("<path:object_id>", "1").replace("<id>", "1").replace("<str:name>", "x")
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", "x1", path).replace("^", "").replace("$", "")
    path = re.sub(r"<[^>]+>", "1", path)
    return "/" + path


def _payloads(url: str) -> Iterator[dict[str, Any]]:
    # allauth's forms, tested by allauth, get the values that most often break a stack: unicode,
    # CR/LF, NUL and length; our own views get every one.
    for value in HOSTILE if not url.startswith("/accounts/") else HOSTILE[:4]:
        yield dict.fromkeys(FIELDS, value)
    # Wrong types: lists where one value is expected, and nothing at all.
    yield {field: ["a", "b"] for field in FIELDS}
    yield {}
    if not url.startswith("/accounts/"):
        # Our own views: one field at a time too, so that no refused field hides what another does.
        for field, value in zip(FIELDS, itertools.cycle(HOSTILE), strict=False):
            yield {field: value}


def test_hostile_values_posted_anywhere_get_no_server_error(settings: Any) -> None:
    customer = make_customer(email="hostile@example.com")
    card = PaymentMethod.objects.get(customer=customer)
    change = BillingChange.objects.create(
        customer=customer, kind="card_set_default", params={"payment_method": card.stripe_id}
    )
    routes = [r for r in _routes(get_resolver().url_patterns) if not r.startswith("admin/")]
    urls = sorted({_concrete(r, card_id=card.pk, change_id=str(change.pk)) for r in routes})
    assert len(urls) > 25, urls
    failures = []
    for client_name, client in (("anonymous", Client()), ("customer", logged_in(customer))):
        for url in urls:
            for payload in _payloads(url):
                response = client.post(url, payload)
                if response.status_code >= 500:
                    failures.append((client_name, url, sorted(payload)[:2], response.status_code))
                if client_name == "customer" and url.startswith("/accounts/logout"):
                    client.force_login(customer.user)
    assert failures == []
    # Whatever was refused, none of the hostile values was recorded (a valid click, e.g. a form
    # with no values at all, may have made an ordinary change).
    stored = str(mirror_snapshot())
    for marker in (
        "ünïcødé",
        "Set-Cookie",
        "nul\\x00",
        "xxxxxxxxxx",
        "../",
        "javascript:",
        "evil.example",
        "<script>",
    ):
        assert marker not in stored, marker


def test_a_value_that_would_reach_stripe_is_refused_with_a_sentence_not_blamed_on_stripe() -> None:
    customer = make_customer(email="attempt@example.com", price=None)
    client = logged_in(customer)
    for attempt in ("ünïcødé-attempt", "abc\r\ndef-attempt", "x" * 500, ""):
        response = client.post("/cards/setup/", {"attempt": attempt})
        assert response.status_code == 400
        assert response.json()["error"] == "This page is out of date. Please reload it and try again."
    ok = client.post("/cards/setup/", {"attempt": "a-real-page-view"})
    assert ok.status_code == 200 and ok.json()["client_secret"].startswith("seti_")


def test_language_next_that_is_not_one_of_our_pages_goes_to_the_dashboard() -> None:
    customer = make_customer(email="next@example.com", price=None, card=None)
    client = logged_in(customer)
    for target in (
        "ünïcødé",
        "not a url at all",
        "portal:cards",
        "https://evil.example/",
        "//evil.example/",
        "/nowhere/",
    ):
        response = client.post("/language/", {"language": "nl", "next": target})
        assert (response.status_code, response["Location"]) == (302, "/"), target
    assert client.post("/language/", {"language": "sv", "next": "/cards/?x=1"})["Location"] == "/cards/?x=1"


def test_a_login_without_a_billing_customer_is_shown_a_page_and_nothing_is_created() -> None:
    staff = get_user_model().objects.create_user(username="staff", email="staff@example.com", is_staff=True)
    client = Client()
    client.force_login(staff)
    for url in ("/", "/cards/", "/cards/add/"):
        response = client.get(url)
        assert response.status_code == 403
        assert "This login has no billing account" in response.content.decode()
    assert client.post("/language/", {"language": "nl"}).status_code == 403
    assert not BillingCustomer.objects.filter(user=staff).exists()


def test_an_overlong_email_address_is_refused_by_the_form() -> None:
    customer = make_customer(email="short@example.com", price=None, card=None)
    client = logged_in(customer)
    overlong = "a" * 300 + "@example.com"
    response = client.post("/accounts/email/", {"email": overlong, "action_add": ""})
    assert response.status_code == 200
    assert "An email address can be at most 254 characters long." in response.content.decode()
    assert not customer.user.emailaddress_set.filter(email=overlong).exists()
    signup = Client().post(
        "/accounts/signup/",
        {"email": overlong, "password1": "x-long-passphrase-1", "password2": "x-long-passphrase-1"},
    )
    assert "at most 254 characters" in signup.content.decode()
    assert not get_user_model().objects.filter(email=overlong).exists()


def test_every_page_sends_a_content_security_policy(settings: Any) -> None:
    settings.STRIPE_JS_URL = "http://127.0.0.1:12999/v3/"
    customer = make_customer(email="csp@example.com")
    client = logged_in(customer)
    for url in ("/", "/cards/", "/cards/add/", "/accounts/email/", "/accounts/login/"):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'", url
        assert directives["script-src"] == "'self' http://127.0.0.1:12999", url
        assert directives["frame-src"] == "'self' http://127.0.0.1:12999", url
        assert directives["style-src"] == "'self'", url
        assert directives["frame-ancestors"] == "'none'", url
    assert "Content-Security-Policy" in Client().get("/accounts/login/")
    # In production, Stripe's own hosts, as Stripe documents them for Stripe.js.
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    policy = client.get("/cards/add/")["Content-Security-Policy"]
    assert "script-src 'self' https://js.stripe.com https://*.js.stripe.com" in policy
    assert "https://hooks.stripe.com" in policy


def test_the_admin_shows_billing_customers_but_does_not_edit_add_or_delete_them() -> None:
    customer = make_customer(email="admin-view@example.com", price=None, card=None)
    admin = get_user_model().objects.create_superuser(username="root", email="root@example.com", password="x")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/billing/billingcustomer/{customer.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    before = mirror_snapshot()
    assert (
        client.post(
            f"/admin/billing/billingcustomer/{customer.pk}/change/", {"currency": "zzz", "name": "Edited"}
        ).status_code
        == 403
    )
    assert client.get("/admin/billing/billingcustomer/add/").status_code == 403
    assert client.post(
        "/admin/billing/billingcustomer/", {"action": "delete_selected", "_selected_action": [customer.pk]}
    ).status_code in (200, 302)
    assert mirror_snapshot() == before
    listing = client.get("/admin/billing/billingcustomer/").content.decode()
    assert "delete_selected" not in listing
