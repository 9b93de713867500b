"""The Stripe.js stand-in: ``/v3/`` (the script), the Payment Element's card-form iframe
under ``/v3/elements/``, and the 3-D Secure test page under ``/_emulator/3ds/<intent>``.

The script mirrors the Stripe.js v3 API the portal calls, so swapping its URL for
``https://js.stripe.com/v3/`` is the only change production needs. Card data is typed
into an iframe served from the emulator's origin and sent from there straight to the
API with the publishable key, as with real Stripe.js; the merchant page never sees it.
"""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import StripeError

if TYPE_CHECKING:
    from .app import Emulator

Reply = tuple[int, str, bytes]

_HTML = "text/html; charset=utf-8"
_JS = "application/javascript; charset=utf-8"

# Only these names are served, so a crafted path can't read anything else from the package.
_STATIC: dict[str, tuple[str, str]] = {
    "/v3/elements/payment.html": ("payment.html", _HTML),
    "/v3/elements/payment.js": ("payment.js", _JS),
    "/v3/elements/payment.css": ("payment.css", "text/css; charset=utf-8"),
}

_CHALLENGE = re.compile(r"^/_emulator/3ds/(?P<intent_id>(?:seti|pi)_[A-Za-z0-9]+)/?$")

_KINDS = frozenset({"setup_intent", "payment_intent"})


def serve(emulator: Emulator, method: str, path: str, query: str, raw: bytes) -> Reply | None:
    if path in ("/v3", "/v3/") and method == "GET":
        return 200, _JS, _script(emulator)
    if path in _STATIC and method == "GET":
        name, content_type = _STATIC[path]
        return 200, content_type, _static(name)
    found = _CHALLENGE.match(path)
    if found:
        if method == "GET":
            return _challenge_page(emulator, found["intent_id"])
        if method == "POST":
            return _complete_challenge(emulator, found["intent_id"], raw)
    return None


@functools.cache
def _static(name: str) -> bytes:
    return (resources.files("stripe_emulator") / "static" / name).read_bytes()


def _script(emulator: Emulator) -> bytes:
    # The script finds its origin from its own <script src>; this is only the fallback for
    # a loader that runs it without one (document.currentScript is then null).
    origin = emulator.state.settings.get("public_url") or emulator.url
    return _static("stripe.js").replace(b"__STRIPE_EMULATOR_ORIGIN__", origin.encode())


# 3-D Secure --------------------------------------------------------------------------


def _challenge_page(emulator: Emulator, intent_id: str) -> Reply:
    with emulator.state.lock:
        intent = _intent(emulator, intent_id)
        if intent is None:
            return 404, _HTML, _page("Authentication not found", f"<p>No such intent: {html.escape(intent_id)}</p>")
        if intent.get("status") != "requires_action":
            # The stand-in waits on this page's message, so a stale challenge must still answer.
            return 200, _HTML, _result_page(intent, outcome="none", return_url=None)
        summary = _summary(intent)
    body = f"""<main>
<p class="brand">Stripe emulator &middot; test mode</p>
<h1>3D Secure 2 Test Page</h1>
<p>{summary}</p>
<p>Complete or fail the authentication below. This page stands in for the bank's
challenge; no real card is involved.</p>
<form method="post" action="/_emulator/3ds/{html.escape(intent_id)}">
  <button id="test-source-authorize-3ds" class="complete" type="submit" name="outcome" value="approve">Complete</button>
  <button id="test-source-fail-3ds" class="fail" type="submit" name="outcome" value="fail">Fail</button>
</form>
</main>{_ready_script(intent_id)}"""
    return 200, _HTML, _page("3D Secure 2 Test Page", body)


def _ready_script(intent_id: str) -> str:
    """Tells the stand-in when this page, shown in its dialog, can take a click.

    The page is usually a cross-site frame, and Chromium routes a click by what the compositor
    last drew, not by the DOM: until the merchant page's frame embedding this one has been
    drawn, a click on a button here goes to the merchant page's <iframe> element and is lost
    (no request). Parsed, loaded, and even this page's own animation frames all come too early.
    So: after this page's first paint, and two of its frames later (a first paint can be
    reported before its frame is sent), it says so; the stand-in then waits two of the merchant
    page's frames before marking the dialog ready."""
    message = {"__stripeEmulator": True, "type": "3ds-ready", "intent": intent_id}
    return f"""<script>
(function () {{
  if (window.parent === window) {{ return; }}
  function ready() {{
    requestAnimationFrame(function () {{
      requestAnimationFrame(function () {{ window.parent.postMessage({_js_literal(message)}, '*'); }});
    }});
  }}
  var types = (window.PerformanceObserver && PerformanceObserver.supportedEntryTypes) || [];
  if (types.indexOf('paint') >= 0) {{
    new PerformanceObserver(function (list, observer) {{ observer.disconnect(); ready(); }})
      .observe({{type: 'paint', buffered: true}});
  }} else {{
    window.addEventListener('load', ready);
  }}
}})();
</script>"""


def _complete_challenge(emulator: Emulator, intent_id: str, raw: bytes) -> Reply:
    from .resources import intents  # late: resources import this module's package siblings

    outcome = dict(parse_qsl(raw.decode("utf-8", "replace"))).get("outcome", "")
    if outcome not in ("approve", "fail"):
        return 400, _HTML, _page("Bad request", "<p>outcome must be approve or fail.</p>")
    with emulator.state.lock:
        before = _intent(emulator, intent_id)
        if before is None:
            return 404, _HTML, _page("Authentication not found", f"<p>No such intent: {html.escape(intent_id)}</p>")
        # The redirect target lives in next_action, which completing the challenge clears.
        return_url = ((before.get("next_action") or {}).get("redirect_to_url") or {}).get("return_url")
        try:
            intent = intents.complete_authentication(
                emulator.state, intent_id=intent_id, approved=outcome == "approve"
            )
        except StripeError as exc:
            return exc.status, _HTML, _page("Authentication error", f"<p role='alert'>{html.escape(exc.message)}</p>")
        return 200, _HTML, _result_page(intent, outcome=outcome, return_url=return_url)


def _intent(emulator: Emulator, intent_id: str) -> dict[str, Any] | None:
    intent = emulator.state.find(intent_id)
    if intent is None or intent.get("object") not in _KINDS:
        return None
    return intent


def _summary(intent: dict[str, Any]) -> str:
    if intent["object"] == "payment_intent":
        amount = intent.get("amount") or 0
        currency = str(intent.get("currency") or "").upper()
        return f"Authenticate a payment of <strong>{amount / 100:.2f} {html.escape(currency)}</strong>."
    return "Authenticate your card for future payments."


def _result_page(intent: dict[str, Any], *, outcome: str, return_url: str | None) -> bytes:
    status = str(intent.get("status"))
    succeeded = status in ("succeeded", "processing", "requires_capture")
    redirect = _with_result(return_url, intent, succeeded) if return_url else None
    message = {
        "__stripeEmulator": True,
        "type": "3ds-complete",
        "intent": intent["id"],
        "outcome": outcome,
        "status": status,
    }
    heading = {"approve": "Authentication complete", "fail": "Authentication failed"}.get(
        outcome, "Nothing to authenticate"
    )
    link = f'<p><a href="{html.escape(redirect)}">Return to the merchant</a></p>' if redirect else ""
    # The message names only the intent and its status, so any window may receive it; the
    # stand-in checks that it came from this origin and from its own challenge frame.
    script = f"""<script>
(function () {{
  var message = {_js_literal(message)};
  var redirect = {_js_literal(redirect)};
  if (window.parent !== window) {{ window.parent.postMessage(message, '*'); return; }}
  if (window.opener) {{ window.opener.postMessage(message, '*'); }}
  if (redirect) {{ window.location.replace(redirect); }}
}})();
</script>"""
    body = f"<main><h1>{heading}</h1><p>Status: {html.escape(status)}</p>{link}</main>{script}"
    return _page(heading, body)


def _with_result(return_url: str, intent: dict[str, Any], succeeded: bool) -> str:
    """The return URL with the query Stripe adds after a redirect-based authentication."""
    kind = intent["object"]
    status = "processing" if intent.get("status") == "processing" else ("succeeded" if succeeded else "failed")
    parts = urlsplit(return_url)
    extra = urlencode({
        kind: intent["id"],
        f"{kind}_client_secret": intent.get("client_secret") or "",
        "redirect_status": status,
    })
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _js_literal(value: Any) -> str:
    # "</" would end the <script> element early; escaping "<" keeps the JSON valid JS.
    return json.dumps(value).replace("<", "\\u003c")


def _page(title: str, body: str) -> bytes:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title>
<style>
  body {{ font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1f36; margin: 0;
         background: #f6f9fc; }}
  main {{ max-width: 28rem; margin: 0 auto; padding: 1.5rem; }}
  h1 {{ font-size: 1.35rem; margin: .25rem 0 1rem; }}
  .brand {{ color: #697386; font-size: .85rem; margin: 0; }}
  form {{ display: flex; gap: .75rem; flex-wrap: wrap; margin-top: 1.5rem; }}
  button {{ flex: 1 1 8rem; min-height: 44px; font: inherit; font-weight: 600; border-radius: 6px;
           cursor: pointer; border: 1px solid transparent; }}
  .complete {{ background: #635bff; color: #fff; }}
  .fail {{ background: #fff; color: #df1b41; border-color: #df1b41; }}
  button:focus-visible {{ outline: 3px solid #a5b4fc; outline-offset: 2px; }}
</style></head>
<body>{body}</body></html>""".encode()
