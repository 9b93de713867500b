"""Accounts through django-allauth: sign-up with email verification, password and emailed-code
login, password reset; every portal page needs a login."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from billing.models import BillingCustomer
from tests.portal_support import PASSWORD, make_customer

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-and-long-passphrase-42"


def _link_in(body: str) -> str:
    match = re.search(r"https?://testserver(/\S+)", body)
    assert match, body
    return match.group(1)


def test_portal_pages_need_a_login() -> None:
    client = Client()
    for path in ["/", "/cards/", "/cards/add/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_sign_up_verifies_the_email_before_the_dashboard_opens() -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="nl")
    response = client.post(
        "/accounts/signup/", {"email": "grace@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    # The new account has its billing customer, in the language it signed up in.
    customer = BillingCustomer.objects.get(user__email="grace@example.com")
    assert customer.language == "nl"
    assert client.get("/").status_code == 302  # not logged in until verified

    assert len(mail.outbox) == 1
    confirm = _link_in(mail.outbox[0].body)
    assert client.get(confirm).status_code == 200
    assert client.post(confirm).status_code == 302
    response = client.post("/accounts/login/", {"login": "grace@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password_is_refused_with_a_message(stripe_emulated: object) -> None:
    customer = make_customer(email="ada@example.com", card=None, price=None)
    client = Client()
    response = client.post("/accounts/login/", {"login": customer.email, "password": "not-the-password"})
    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert client.get("/").status_code == 302


def test_login_by_emailed_code(stripe_emulated: object) -> None:
    customer = make_customer(email="ada@example.com", card=None, price=None)
    client = Client()
    response = client.post("/accounts/login/code/", {"email": customer.email})
    assert response.status_code == 302
    code = re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", mail.outbox[-1].body, re.MULTILINE)
    assert code, mail.outbox[-1].body
    response = client.post("/accounts/login/code/confirm/", {"code": code.group(1)})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_password_reset_by_emailed_link(stripe_emulated: object) -> None:
    customer = make_customer(email="ada@example.com", card=None, price=None)
    client = Client()
    client.post("/accounts/password/reset/", {"email": customer.email})
    link = _link_in(mail.outbox[-1].body)
    form_url = client.get(link, follow=True).redirect_chain[-1][0]
    response = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.post("/accounts/login/", {"login": customer.email, "password": PASSWORD}).status_code == 200
    response = client.post("/accounts/login/", {"login": customer.email, "password": NEW_PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
