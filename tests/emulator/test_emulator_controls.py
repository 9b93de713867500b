"""The emulator as a program: started from the command line, snapshots, its own controls,
the card updater, hosted invoice pages, and work that falls due in real time."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import stripe

from stripe_emulator.app import Emulator

from .support import DAY, JAN_1, catalog, customer_on_clock, emulator_post, event_types, raw, subscribe


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_started_from_the_command_line_it_serves_the_official_client() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": f"http://127.0.0.1:{port}"})
        assert client.v1.customers.create(params={"email": "cli@example.com"}).email == "cli@example.com"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_snapshot_keeps_state_across_restarts(tmp_path: pathlib.Path) -> None:
    snapshot = tmp_path / "state.json"
    first = Emulator(snapshot=str(snapshot)).start()
    client = stripe.StripeClient("sk_test_snap", base_addresses={"api": first.url})
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id)
    first.stop()
    second = Emulator(snapshot=str(snapshot)).start()
    try:
        again = stripe.StripeClient("sk_test_snap", base_addresses={"api": second.url})
        restored = again.v1.subscriptions.retrieve(sub.id)
        assert (restored.status, restored["items"].data[0].price.id) == ("active", prices.monthly.id)
        assert again.v1.customers.retrieve(customer.id).test_clock == clock.id
        new = again.v1.customers.create()
        assert new.id != customer.id
    finally:
        second.stop()


def test_reset_forgets_everything(client: stripe.StripeClient, fresh_emulator: Emulator) -> None:
    client.v1.customers.create()
    emulator_post(fresh_emulator.url, "/_emulator/reset", {})
    assert client.v1.customers.list().data == []


def test_the_card_updater_refreshes_a_card_and_says_so(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    customer = client.v1.customers.create()
    card = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2026, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(card.id, params={"customer": customer.id})
    emulator_post(
        fresh_emulator.url,
        f"/_emulator/payment_methods/{card.id}/update_card",
        {"exp_month": 12, "exp_year": 2030},
    )
    refreshed = client.v1.payment_methods.retrieve(card.id)
    assert (refreshed.card.exp_month, refreshed.card.exp_year) == (12, 2030)
    event = client.v1.events.list(params={"type": "payment_method.automatically_updated"}).data[0]
    assert event.data.previous_attributes.card.exp_year == 2026


def test_an_invalid_card_number_is_refused(client: stripe.StripeClient) -> None:
    try:
        client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4242424242424241", "exp_month": 1, "exp_year": 2030}}
        )
    except stripe.CardError as exc:
        assert exc.code == "incorrect_number"
    else:
        raise AssertionError("a number failing the Luhn check was accepted")


def test_detaching_the_default_card_clears_it(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, _clock, pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id, default_payment_method=pm)
    client.v1.payment_methods.detach(pm)
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    assert client.v1.subscriptions.retrieve(sub.id).default_payment_method is None
    assert "payment_method.detached" in event_types(client)
    assert client.v1.customers.payment_methods.list(customer.id).data == []


def test_hosted_invoice_page_and_pdf_are_served(client: stripe.StripeClient) -> None:
    prices = catalog(client)
    customer, _clock, _pm = customer_on_clock(client)
    sub = subscribe(client, customer.id, prices.monthly.id, expand=["latest_invoice"])
    invoice = sub.latest_invoice
    with urllib.request.urlopen(invoice.hosted_invoice_url) as page:
        html = page.read().decode()
    assert invoice.number in html and "paid" in html
    with urllib.request.urlopen(invoice.invoice_pdf) as pdf:
        assert pdf.headers["Content-Type"] == "application/pdf"
        assert pdf.read().startswith(b"%PDF-")


def test_work_due_in_real_time_runs_without_a_clock(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    """Objects without a test clock live on real time: here a pending update expires by itself."""
    emulator_post(fresh_emulator.url, "/_emulator/settings", {"pending_update_seconds": 1})
    prices = catalog(client)
    customer = client.v1.customers.create()
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    sub = subscribe(client, customer.id, prices.basic_monthly.id, default_payment_method=good.id)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": customer.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": failing.id})
    pending = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": prices.monthly.id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    assert pending.pending_update is not None
    deadline = time.monotonic() + 5
    while client.v1.subscriptions.retrieve(sub.id).pending_update is not None:
        assert time.monotonic() < deadline, "the pending update did not expire"
        time.sleep(0.1)
    assert client.v1.invoices.retrieve(pending.latest_invoice).status == "void"
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == prices.basic_monthly.id


def test_emulator_settings_refuse_unknown_names(fresh_emulator: Emulator) -> None:
    request = urllib.request.Request(
        fresh_emulator.url + "/_emulator/settings",
        data=b'{"retry_days": [1]}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
    else:
        raise AssertionError("an unknown setting was accepted")
    assert raw(fresh_emulator.url, "GET", "/_emulator/health", key=None)[2]["ok"] is True


def test_an_advancing_test_clock_can_be_waited_for(
    client: stripe.StripeClient, fresh_emulator: Emulator
) -> None:
    """Stripe's clients poll an advancing clock; the emulator answers the moment it is ready."""
    prices = catalog(client)
    customer, clock, _pm = customer_on_clock(client)
    subscribe(client, customer.id, prices.monthly.id)
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": JAN_1 + 40 * DAY})

    settled = emulator_post(fresh_emulator.url, f"/_emulator/test_clocks/{clock.id}/wait", {"timeout": 30})
    assert (settled["id"], settled["status"], settled["frozen_time"]) == (clock.id, "ready", JAN_1 + 40 * DAY)
    # Everything the advance ran is there by then: the renewal was invoiced and its events sent.
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).status == "ready"
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 2
    assert (
        len(client.v1.events.list(params={"type": "test_helpers.test_clock.ready"}).data) == 2
    )  # created, advanced


def test_waiting_for_a_clock_that_does_not_settle_times_out(
    fresh_emulator: Emulator, client: stripe.StripeClient
) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": JAN_1})
    with fresh_emulator.state.lock:
        fresh_emulator.state.find(clock.id)["status"] = "advancing"  # as if its advance never finished
    status, _headers, body = raw(
        fresh_emulator.url,
        "POST",
        f"/_emulator/test_clocks/{clock.id}/wait",
        '{"timeout": 0.2}',
        headers={"Content-Type": "application/json"},
        key=None,
    )
    assert status == 504 and "still advancing" in body["error"]["message"]
    missing = raw(
        fresh_emulator.url,
        "POST",
        "/_emulator/test_clocks/clock_missing/wait",
        '{"timeout": 0.2}',
        headers={"Content-Type": "application/json"},
        key=None,
    )
    assert missing[0] == 404
