"""Endpoints Stripe doesn't have: test controls under ``/_emulator/``, hosted invoice
pages, and the Stripe.js stand-in under ``/v3/``. JSON in, JSON out; no API key."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from . import billing, stripejs
from .errors import InvalidRequestError, StripeError
from .resources import clocks, intents, payment_methods
from .routing import render
from .state import DEFAULT_SETTINGS

if TYPE_CHECKING:
    from .app import Emulator

Reply = tuple[int, str, bytes]


def _json(status: int, payload: Any) -> Reply:
    return status, "application/json", json.dumps(payload).encode()


def serve(emulator: Emulator, method: str, path: str, query: str, raw: bytes,
          headers: dict[str, str]) -> Reply | None:
    if path.startswith("/v3") or path.startswith("/_emulator/3ds/"):
        return stripejs.serve(emulator, method, path, query, raw)
    for pattern, verb, handler in _ROUTES:
        found = pattern.match(path)
        if found and verb == method:
            body: dict[str, Any] = {}
            if raw:
                content_type = headers.get("Content-Type", "")
                body = dict(parse_qsl(raw.decode())) if "form" in content_type else json.loads(raw)
            try:
                return handler(emulator, body, dict(parse_qsl(query)), **found.groupdict())
            except StripeError as exc:
                return _json(exc.status, exc.body("req_emulator"))
    return None


_ROUTES: list[tuple[re.Pattern[str], str, Callable[..., Reply]]] = []


def _route(method: str, path: str) -> Callable[[Callable[..., Reply]], Callable[..., Reply]]:
    def register(fn: Callable[..., Reply]) -> Callable[..., Reply]:
        _ROUTES.append((re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), method, fn))
        return fn

    return register


@_route("GET", "/_emulator/health")
def health(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    return _json(200, {"ok": True, "api_version": "2026-10-28.endive"})


@_route("POST", "/_emulator/reset")
def reset(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    emulator.reset()
    return _json(200, {"reset": True})


@_route("GET", "/_emulator/settings")
def get_settings(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    return _json(200, emulator.state.settings)


@_route("POST", "/_emulator/settings")
def set_settings(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    """Merge the given settings; unknown names are refused so a typo can't pass silently."""
    unknown = sorted(set(body) - set(DEFAULT_SETTINGS))
    if unknown:
        return _json(400, {"error": {"type": "invalid_request_error", "message": f"Unknown settings: {unknown}"}})
    with emulator.state.lock:
        for key, value in body.items():
            if isinstance(value, dict):
                emulator.state.settings[key].update(value)
            else:
                emulator.state.settings[key] = value
        return _json(200, emulator.state.settings)


@_route("POST", "/_emulator/faults")
def add_fault(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    """Make the next ``count`` API requests under ``path_prefix`` fail with ``status``
    (429, 500, 503) or wait ``delay_seconds`` first."""
    fault = {"count": 1, "path_prefix": "/v1/", **body}
    with emulator.state.lock:
        emulator.state.faults.append(fault)
    return _json(200, fault)


@_route("GET", "/_emulator/deliveries")
def deliveries(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    with emulator.state.lock:
        return _json(200, {"data": list(emulator.state.deliveries)})


@_route("POST", "/_emulator/webhooks/flush")
def flush(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    """Wait until nothing is due now or in flight; with ``{"endpoint": "we_..."}``, until that
    endpoint has nothing queued or in flight at all, retries scheduled later included."""
    timeout = float(body.get("timeout", 10))
    if body.get("endpoint"):
        idle = emulator.dispatcher.settled(str(body["endpoint"]), timeout)
    else:
        idle = emulator.dispatcher.idle(timeout)
    return _json(200 if idle else 504, {"idle": idle})


@_route("POST", "/_emulator/test_clocks/{clock_id}/wait")
def wait_for_clock(emulator: Emulator, body: dict[str, Any], query: dict[str, str], clock_id: str) -> Reply:
    """Answer once an advancing test clock is ready again (504 after ``timeout`` seconds)."""
    clock = clocks.wait_until_ready(emulator.state, clock_id, float(body.get("timeout", 30)))
    if clock is None:
        return _json(504, {"error": {"type": "api_error", "message": f"Test clock {clock_id} is still advancing."}})
    with emulator.state.lock:
        return _json(200, render(emulator.state, clock))


@_route("POST", "/_emulator/intents/{intent_id}/authenticate")
def authenticate(emulator: Emulator, body: dict[str, Any], query: dict[str, str], intent_id: str) -> Reply:
    """Answer a 3-D Secure challenge without a browser: ``{"outcome": "approve" | "fail"}``."""
    with emulator.state.lock:
        intent = intents.complete_authentication(
            emulator.state, intent_id=intent_id, approved=body.get("outcome", "approve") == "approve"
        )
        return _json(200, {"id": intent["id"], "status": intent["status"]})


@_route("POST", "/_emulator/payment_methods/{pm_id}/update_card")
def update_card(emulator: Emulator, body: dict[str, Any], query: dict[str, str], pm_id: str) -> Reply:
    """The card account updater: the bank sent new details (``exp_month``, ``exp_year``,
    optionally ``last4``); emits ``payment_method.automatically_updated``."""
    with emulator.state.lock:
        pm = payment_methods.automatically_update(emulator.state, pm_id=pm_id, changes=body)
        return _json(200, {"id": pm["id"], "card": pm["card"]})


@_route("POST", "/_emulator/payment_methods/{pm_id}/decline")
def decline_card(emulator: Emulator, body: dict[str, Any], query: dict[str, str], pm_id: str) -> Reply:
    """The card starts declining: ``{"decline_code": "insufficient_funds"}`` (any code Stripe
    documents) makes every later charge on it fail with that code (``authentication_required``:
    every payment asks for 3-D Secure, as on the always-authenticate test card);
    ``{"decline_code": null}`` heals it. Attaching and setting it up are not affected."""
    if "decline_code" not in body:
        raise InvalidRequestError("Missing decline_code (a Stripe decline code, or null).", param="decline_code")
    with emulator.state.lock:
        pm = payment_methods.set_decline(emulator.state, pm_id=pm_id, decline_code=body["decline_code"])
        return _json(200, {"id": pm["id"], "decline_code": pm["_decline"]})


@_route("POST", "/_emulator/run_due")
def run_due(emulator: Emulator, body: dict[str, Any], query: dict[str, str]) -> Reply:
    """Run now what is due for objects on real time (the ticker does this every 250 ms)."""
    ran = billing.run_due(emulator.state, clock=None, until=int(time.time()))
    return _json(200, {"ran": ran})


@_route("GET", "/_emulator/invoices/{invoice_id}")
def hosted_invoice(emulator: Emulator, body: dict[str, Any], query: dict[str, str], invoice_id: str) -> Reply:
    with emulator.state.lock:
        invoice = emulator.state.find(invoice_id)
        if not invoice or invoice.get("object") != "invoice":
            return 404, "text/html; charset=utf-8", b"<h1>Invoice not found</h1>"
        rows = "".join(
            f"<tr><td>{html.escape(line['description'] or '')}</td>"
            f"<td style='text-align:right'>{_money(line['amount'], invoice['currency'])}</td></tr>"
            for line in invoice["_lines"]
        )
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Invoice {html.escape(invoice['number'] or invoice['id'])}</title></head>
<body style="font-family:sans-serif;max-width:40rem;margin:2rem auto">
<p><small>Stripe emulator: hosted invoice page</small></p>
<h1>Invoice {html.escape(invoice['number'] or '')}</h1>
<p>Status: <strong data-status>{invoice['status']}</strong></p>
<table style="width:100%">{rows}</table>
<p>Amount due: <strong>{_money(invoice['amount_due'], invoice['currency'])}</strong>;
paid: {_money(invoice['amount_paid'], invoice['currency'])}</p>
<p><a href="/_emulator/invoices/{invoice['id']}/pdf">Download PDF</a></p></body></html>"""
        return 200, "text/html; charset=utf-8", page.encode()


@_route("GET", "/_emulator/invoices/{invoice_id}/pdf")
def invoice_pdf(emulator: Emulator, body: dict[str, Any], query: dict[str, str], invoice_id: str) -> Reply:
    with emulator.state.lock:
        invoice = emulator.state.find(invoice_id)
        if not invoice or invoice.get("object") != "invoice":
            return 404, "text/plain", b"not found"
        text = f"Invoice {invoice['number']} - {invoice['status']} - {_money(invoice['amount_due'], invoice['currency'])}"
        return 200, "application/pdf", _tiny_pdf(text)


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency.upper()}"


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, enough for a download link to be real."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
