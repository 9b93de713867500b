"""`make demo`: the demo customers show the states they are meant to show, and the development
mailbox shows what was sent as it was written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.mail import EmailMultiAlternatives
from django.test import Client
from django.urls import path

from portal.dev import mailbox
from portal.dev import seed as demo
from portal.urls import urlpatterns as portal_urlpatterns

# The portal's URLs with the development mailbox, which portal.urls adds only when DEBUG installs portal.dev.
urlpatterns = [
    *portal_urlpatterns,
    path("dev/mailbox/", mailbox.mailbox, name="dev_mailbox"),
    path("dev/mailbox/<str:name>/", mailbox.message, name="dev_mailbox_message"),
]


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _dashboard(email: str) -> str:
    client = Client()
    assert client.login(username=email, password=demo.PASSWORD), email
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_demo_customers_log_in_and_see_their_state(catalog: None) -> None:
    logins = demo.seed()

    assert [login.email for login in logins] == [
        "ada@example.com",
        "grace@example.com",
        "alan@example.com",
        "margaret@example.com",
        "astrid@example.com",
        "edsger@example.com",
    ]
    ada = _text(_dashboard("ada@example.com"))
    assert "Active" in ada and "Visa •••• 4242" in ada and "Nothing to pay" in ada
    assert "expires before your next payment" in _text(_dashboard("grace@example.com"))
    alan = _text(_dashboard("alan@example.com"))
    assert "Payment failed" in alan and "has not gone through yet" in alan and "Visa •••• 0341" in alan
    assert "Paused until" in _text(_dashboard("margaret@example.com"))
    astrid = _dashboard("astrid@example.com")
    assert '<html lang="sv">' in astrid and "kr" in astrid
    assert '<html lang="nl">' in _dashboard("edsger@example.com")

    staff = Client()
    assert staff.login(username=demo.ADMIN_EMAIL, password=demo.PASSWORD)
    assert staff.get("/admin/").status_code == 200


@pytest.mark.urls(__name__)
def test_mailbox_shows_non_ascii_text_and_html_links_open_outside_the_frame(
    tmp_path: Path, settings: Any
) -> None:
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    message = EmailMultiAlternatives(
        subject="Betalning mottagen", body="Vi har tagit emot 19,00 €. Tack!", to=["astrid@example.com"]
    )
    message.attach_alternative(
        '<!doctype html><html lang="sv"><body><a href="http://127.0.0.1:8000/">Se ditt abonnemang</a></body></html>',
        "text/html",
    )
    message.send()

    browser = Client()
    listing = browser.get("/dev/mailbox/").content.decode()
    assert "Vi har tagit emot 19,00 €. Tack!" in listing
    link = re.search(r'<a href="(/dev/mailbox/[^"]+/)">Betalning mottagen</a>', listing)
    assert link is not None

    one = browser.get(link.group(1)).content.decode()
    # The HTML part sits in a sandboxed iframe; its links must navigate the window, not the frame.
    assert "&lt;base target=&quot;_top&quot;&gt;" in one
    assert "Se ditt abonnemang" in one
