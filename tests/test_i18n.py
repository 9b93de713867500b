"""The portal speaks Swedish and Dutch: every message is translated, pages and emails come in the
customer's saved language (or the browser's before login), with money and dates the local way."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.test import Client
from django.utils import timezone

from billing.models import BillingCustomer, PaymentMethod
from billing.sync import reconcile_customer
from tests.portal_support import logged_in, make_customer, stripe_client

LANGUAGES = ["sv", "nl"]
LOCALE_DIR = Path(settings.BASE_DIR) / "locale"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\{.*?\}\}")
# Words that are the same in English and the other language; anything else left in English is a miss.
SAME_AS_ENGLISH = {"sv": {"Status"}, "nl": {"Status", "Account"}}

MONTHS = {
    "sv": [
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ],
    "nl": [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ],
}
NBSP = "\xa0"
# One register per language, everywhere: Dutch says "je/jouw" (as allauth does; the few Django
# texts a customer meets are overridden in portal/locale_overrides), Swedish "du/din".  The other
# register's pronouns, as whole words ("er" is also the plural ending in "SMS:er", and "ni", "er",
# "era" and "ert" occur inside many Swedish words).
OTHER_REGISTER = {
    # Not the "u" of "a.u.b.", a fixed abbreviation in either register.
    "nl": re.compile(r"(?<![\w.])(?:u|uw)(?![\w.])", re.IGNORECASE),
    "sv": re.compile(r"(?<![\w:-])(?:ni|er|ert|era)(?![\w-])", re.IGNORECASE),
}
OUR_REGISTER = {
    "nl": re.compile(r"\b(?:je|jij|jou|jouw)\b", re.IGNORECASE),
    "sv": re.compile(r"\b(?:du|din|ditt|dina)\b", re.IGNORECASE),
}
OVERRIDES_DIR = Path(settings.BASE_DIR) / "portal" / "locale_overrides"


def _catalog(language: str, kind: str = "po") -> Catalog:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"django.{kind}"
    with path.open("rb") as handle:
        return read_po(handle, locale=language) if kind == "po" else read_mo(handle)


def _forms(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    """A message's text as a list of its plural forms (a .po gives tuples, a .mo lists)."""
    if value is None:
        return []
    return list(value) if isinstance(value, tuple | list) else [value]


def _local_day(moment: dt.datetime, *, language: str) -> str:
    """A long date as people write it in Sweden and the Netherlands: "21 december 2026"."""
    day = timezone.localtime(moment, zoneinfo.ZoneInfo(settings.PORTAL_DISPLAY_TIME_ZONE)).date()
    return f"{day.day} {MONTHS[language][day.month - 1]} {day.year}"


def _text(response: Any) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed (non-breaking spaces kept)."""
    html = response.content.decode()
    return re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", html))


# --------------------------------------------------------------------------- the catalogs


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_has_a_checked_translation(language: str) -> None:
    catalog = _catalog(language)
    messages = [m for m in catalog if m.id]
    assert len(messages) > 100
    assert catalog.plural_forms == "nplurals=2; plural=(n != 1);"
    for message in messages:
        originals = _forms(message.id)
        translations = _forms(message.string)
        assert "fuzzy" not in message.flags, message.id
        assert translations, message.id
        assert len(translations) == catalog.num_plurals if message.pluralizable else 1, message.id
        for form, translation in enumerate(translations):
            assert translation.strip(), message.id
            # A placeholder lost or renamed shows the customer a raw "%(amount)s" or nothing.  Each
            # form against its English form: a singular may leave the count out ("once"), as
            # English does, and every other form says it.
            original = originals[min(form, len(originals) - 1)]
            assert sorted(PLACEHOLDER.findall(translation)) == sorted(PLACEHOLDER.findall(original)), (
                message.id,
                translation,
            )
        if not message.pluralizable and message.string == message.id:
            assert message.id in SAME_AS_ENGLISH[language], f"left in English: {message.id!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_the_translations(language: str) -> None:
    """The .mo files are committed (servers need no gettext); they must be the current .po."""

    def entries(catalog: Catalog) -> dict[tuple[str, ...], tuple[str, ...]]:
        return {tuple(_forms(m.id)): tuple(_forms(m.string)) for m in catalog if m.id}

    source = entries(_catalog(language))
    compiled = entries(_catalog(language, "mo"))
    assert compiled == source


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_translation_addresses_the_customer_the_same_way(language: str) -> None:
    # The patterns themselves: the pronoun is caught, the same letters inside a word are not.
    assert OTHER_REGISTER["nl"].search("Heeft u uw kaart?") and OTHER_REGISTER["sv"].search("Er betalning")
    assert not OTHER_REGISTER["nl"].search("Bekijk je uurtarief, a.u.b.")
    assert not OTHER_REGISTER["sv"].search("Ditt Visa-kort, två SMS:er, servern och Erik")

    translations = [
        (message.id, text) for message in _catalog(language) if message.id for text in _forms(message.string)
    ]
    other_register = [(msgid, text) for msgid, text in translations if OTHER_REGISTER[language].search(text)]
    assert other_register == []
    assert sum(1 for _, text in translations if OUR_REGISTER[language].search(text)) > 20


# --------------------------------------------------------------------------- pages


def test_swedish_customer_sees_swedish_dashboard_with_kronor_and_swedish_dates(catalog: None) -> None:
    customer = make_customer(
        email="astrid@example.com", language="sv", currency="sek", price="standard_month_sek"
    )
    subscription = customer.subscriptions.get()
    assert subscription.current_period_end is not None
    # The browser's language does not matter once the customer has chosen one.
    response = logged_in(customer).get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    text = _text(response)
    assert '<html lang="sv">' in response.content.decode()
    assert "Ditt abonnemang" in text
    assert "Your subscription" not in text
    assert "Aktivt" in text
    assert "Månadsvis" in text
    assert f"199,00{NBSP}kr" in text
    assert (
        f"Nästa betalning 199,00{NBSP}kr den {_local_day(subscription.current_period_end, language='sv')}"
        in text
    )
    assert "Visa •••• 4242 går ut" in text
    assert "Inget att betala. Tack!" in text


def test_dutch_customer_sees_dutch_dashboard_with_euros_and_dutch_dates(catalog: None) -> None:
    customer = make_customer(
        email="anne@example.com", language="nl", currency="eur", price="standard_year_eur"
    )
    subscription = customer.subscriptions.get()
    assert subscription.current_period_end is not None
    response = logged_in(customer).get("/", HTTP_ACCEPT_LANGUAGE="sv")
    text = _text(response)
    assert '<html lang="nl">' in response.content.decode()
    assert "Je abonnement" in text
    assert "Your subscription" not in text
    assert "Jaarlijks" in text
    assert f"€{NBSP}190,00" in text
    assert (
        f"Volgende betaling €{NBSP}190,00 op {_local_day(subscription.current_period_end, language='nl')}"
        in text
    )
    assert "Kaarten beheren" in text


def test_failed_payment_banner_and_open_invoice_in_swedish(catalog: None) -> None:
    customer = make_customer(
        email="britt@example.com",
        language="sv",
        currency="sek",
        price="standard_month_sek",
        card="pm_card_chargeCustomerFail",
    )
    invoice = customer.invoices.get(status="open")
    text = _text(logged_in(customer).get("/"))
    assert f"En betalning på 199,00{NBSP}kr har inte gått igenom än." in text
    assert "Betala med ett annat kort" in text
    assert f"{_local_day(invoice.created, language='sv')} — 199,00{NBSP}kr" in text
    assert "A payment of" not in text


def test_visitor_gets_the_login_page_in_the_browsers_language(db: None) -> None:
    response = Client().get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="nl-NL,nl;q=0.9,en;q=0.5")
    assert response.status_code == 200
    assert '<html lang="nl">' in response.content.decode()
    text = _text(response)
    assert "Aanmelden" in text
    assert "Wachtwoord vergeten?" in text
    assert "Sign In" not in text
    assert "Taal" in text  # our own footer, not only allauth's words


def test_refusal_is_explained_in_the_customers_language(catalog: None) -> None:
    customer = make_customer(
        email="sven@example.com", language="sv", currency="sek", price="standard_month_sek"
    )
    only_card = customer.payment_methods.get()
    client = logged_in(customer)
    response = client.post(f"/cards/{only_card.pk}/remove/", follow=True)
    assert "Det här är ditt enda kort och ditt abonnemang behöver ett." in _text(response)


def test_dutch_pages_say_je_whoever_wrote_the_text(catalog: None) -> None:
    """Our pages, allauth's, and Django's texts on them (the password rules) speak to the customer
    the same informal way."""
    customer = make_customer(email="nl-je@example.com", language="nl", price="standard_month_eur")
    client = logged_in(customer)
    pages = {
        "dashboard": _text(client.get("/")),
        "password change": _text(client.get("/accounts/password/change/")),
        "password reset": _text(Client().get("/accounts/password/reset/", HTTP_ACCEPT_LANGUAGE="nl")),
        "refused signup": _text(
            Client().post(
                "/accounts/signup/",
                {"email": "kort@example.com", "password1": "1234", "password2": "1234"},
                HTTP_ACCEPT_LANGUAGE="nl",
            )
        ),
    }
    assert "Je abonnement" in pages["dashboard"]
    assert "Je wachtwoord moet minstens 8 tekens lang zijn." in pages["password change"]  # Django's rule
    assert "Vul je e-mailadres in" in pages["password reset"]  # allauth's words
    assert "Je wachtwoord mag niet volledig uit cijfers bestaan." in pages["refused signup"]
    for name, text in pages.items():
        assert OTHER_REGISTER["nl"].findall(text) == [], name


def test_overrides_of_djangos_dutch_are_compiled_and_informal() -> None:
    path = OVERRIDES_DIR / "nl" / "LC_MESSAGES"
    with (path / "django.po").open("rb") as handle:
        source = read_po(handle, locale="nl")
    with (path / "django.mo").open("rb") as handle:
        compiled = read_mo(handle)
    pairs = {tuple(_forms(m.id)): tuple(_forms(m.string)) for m in source if m.id}
    assert pairs == {tuple(_forms(m.id)): tuple(_forms(m.string)) for m in compiled if m.id}
    for translations in pairs.values():
        for text in translations:
            assert not OTHER_REGISTER["nl"].search(text), text
            assert OUR_REGISTER["nl"].search(text), text


# --------------------------------------------------------------------------- emails


def _second_card(customer: BillingCustomer) -> PaymentMethod:
    assert customer.stripe_customer_id
    stripe_client().v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": customer.stripe_customer_id}
    )
    reconcile_customer(customer_id=customer.pk)
    return customer.payment_methods.get(last4="4444")


EMAILS = {
    "sv": {
        "subject": "Ditt standardkort har ändrats",
        "greeting": "Hej!",
        "body": "Ditt Mastercard-kort som slutar på 4444 är nu standardkortet för ditt abonnemang.",
        "page": "Klart: Mastercard •••• 4444 är nu ditt standardkort.",
        "english": "Your default card has changed",
    },
    "nl": {
        "subject": "Je standaardkaart is gewijzigd",
        "greeting": "Hallo,",
        "body": "Je Mastercard-kaart die eindigt op 4444 is nu de standaardkaart voor je abonnement.",
        "page": "Klaar: Mastercard •••• 4444 is nu je standaardkaart.",
        "english": "Your default card has changed",
    },
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_email_is_in_the_customers_language(
    language: str, catalog: None, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    expected = EMAILS[language]
    currency = "sek" if language == "sv" else "eur"
    customer = make_customer(
        email=f"mail-{language}@example.com",
        language=language,
        currency=currency,
        price=f"standard_month_{currency}",
    )
    card = _second_card(customer)
    client = logged_in(customer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/cards/{card.pk}/default/", follow=True)
    assert expected["page"] in _text(response)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert isinstance(message, EmailMultiAlternatives)
    assert message.to == [customer.email]
    assert message.subject == expected["subject"]
    assert message.body.startswith(expected["greeting"])
    assert expected["body"] in message.body
    assert expected["english"] not in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert isinstance(html, str)
    assert f'lang="{language}"' in html
    assert expected["body"] in html

    # The in-app list of confirmations says the same thing, in the same language.
    text = _text(client.get("/"))
    assert "Mastercard •••• 4444" in text
    assert ("är nu ditt standardkort" if language == "sv" else "is nu je standaardkaart") in text


# --------------------------------------------------------------------------- choosing a language


def test_choosing_a_language_saves_it_and_the_next_page_speaks_it(catalog: None) -> None:
    customer = make_customer(email="lang@example.com", language="en", price="standard_month_eur")
    client = logged_in(customer)
    assert "Your subscription" in _text(client.get("/"))

    response = client.post("/language/", {"language": "nl", "next": "/cards/"})
    assert response.status_code == 302
    assert response["Location"] == "/cards/"
    customer.refresh_from_db()
    assert customer.language == "nl"
    cards_page = _text(client.get("/cards/"))
    assert "Kaart toevoegen" in cards_page
    assert "Add a card" not in cards_page

    # Saved with the customer, not only in this browser: a new session opens in Dutch.
    assert "Je abonnement" in _text(logged_in(customer).get("/", HTTP_ACCEPT_LANGUAGE="en"))

    client.post("/language/", {"language": "sv", "next": "/"})
    customer.refresh_from_db()
    assert customer.language == "sv"
    assert "Ditt abonnemang" in _text(client.get("/"))


def test_unknown_language_or_foreign_next_changes_nothing_unsafe(catalog: None) -> None:
    customer = make_customer(email="safe@example.com", language="sv", price=None, card=None)
    client = logged_in(customer)
    response = client.post("/language/", {"language": "xx", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    customer.refresh_from_db()
    assert customer.language == "sv"
