"""A real Chromium, offline, against the in-process emulator, plus a tiny merchant site on
another loopback port (so the card form's iframe is cross-origin, as with Stripe).

Needs the ``playwright`` pip package and a system Chromium (Debian: ``apt-get install
chromium``); ``playwright install`` is not used. The tests skip when either is missing."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from stripe_emulator.app import Emulator

playwright_sync = pytest.importorskip("playwright.sync_api")

PUBLISHABLE_KEY = "pk_test_emulator"
HERE = pathlib.Path(__file__).parent
ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "artifacts" / "browser"
CHROMIUM = os.environ.get("STRIPE_EMULATOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@dataclass
class MerchantSite:
    url: str


@dataclass
class Shopper:
    """A browser tab plus what it asked the network for, to check what never left it."""

    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    # What the page's Content-Security-Policy refused, as the browser reports it.
    csp_violations: list[str] = field(default_factory=list)
    # Errors of the page's scripts and the console (the portal's tabs check it stays empty).
    script_errors: list[str] = field(default_factory=list)

    def api_calls(self, fragment: str = "/v1/") -> list[str]:
        return [url for url in self.requests if fragment in url]


def _merchant_handler(stripe_js_url: str) -> type[BaseHTTPRequestHandler]:
    template = (HERE / "merchant.html").read_text()
    page = template.replace("{{STRIPE_JS_URL}}", stripe_js_url).replace(
        "{{PUBLISHABLE_KEY}}", json.dumps(PUBLISHABLE_KEY)
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/":
                body = page.encode()
            elif path == "/return":
                # Where Stripe sends the customer back; the test reads the query from the URL.
                body = b"<!doctype html><title>Returned</title><h1>Back at the merchant</h1>"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def merchant_site(emulator: Emulator) -> Iterator[MerchantSite]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _merchant_handler(f"{emulator.url}/v3/"))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="merchant-site", daemon=True)
    thread.start()
    yield MerchantSite(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    with _launched_chromium() as browser:
        yield browser


@contextlib.contextmanager
def _launched_chromium() -> Iterator[Any]:
    if not pathlib.Path(CHROMIUM).exists():
        # A missing browser is a broken set-up, never a reason to pass: fail loudly.
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser-deps` (apt-get install chromium)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def bank_challenge(page: Any) -> Any:
    """The bank's page in Stripe.js's 3-D Secure dialog, once the dialog says it takes clicks.

    The page is a cross-site frame. Chromium routes a click by what the compositor last drew,
    so for a moment after the frame is attached its buttons are in the DOM, visible and stable
    to Playwright while a click on them still lands on the merchant page's <iframe> element
    and is lost, with no request at all. The stand-in clears aria-busy once the frame is on
    screen."""
    dialog = page.get_by_role("dialog", name="3D Secure authentication")
    playwright_sync.expect(dialog).to_have_attribute("aria-busy", "false")
    return page.frame_locator("iframe[title='3D Secure authentication']")


def open_tab(chromium: Any, **context_options: Any) -> Shopper:
    """A tab in a context of its own, kept on loopback (close its context when done)."""
    context = chromium.new_context(**context_options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    shopper = Shopper(page=page)

    def guard(route: Any) -> None:
        # Everything must stay on loopback: a stray request to the internet is a bug.
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme in ("http", "https") and host not in LOOPBACK:
            shopper.blocked.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    context.on("request", lambda request: shopper.requests.append(f"{request.method} {request.url}"))

    def csp_violation(violation: str) -> None:
        shopper.csp_violations.append(violation)

    # Kept in the page too (window.__cspViolations), for a test to wait on.
    context.expose_function("__reportCspViolation", csp_violation)
    context.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', function (e) {"
        " var seen = e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' on ' + e.documentURI;"
        " window.__cspViolations.push(seen); window.__reportCspViolation(seen); });"
    )
    return shopper


@pytest.fixture()
def shopper(chromium: Any) -> Iterator[Shopper]:
    opened = open_tab(chromium, viewport={"width": 900, "height": 900})
    yield opened
    opened.page.context.close()
    assert opened.blocked == [], f"requests left loopback: {opened.blocked}"


@pytest.fixture()
def phone_shopper(chromium: Any) -> Iterator[Shopper]:
    opened = open_tab(
        chromium,
        viewport={"width": 375, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    yield opened
    opened.page.context.close()
    assert opened.blocked == [], f"requests left loopback: {opened.blocked}"


@pytest.fixture(scope="session")
def artifacts() -> pathlib.Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# --------------------------------------------------------------------------- the portal in a browser


class _OneRequestAtATime:
    """WSGI wrapper for the live server on SQLite's in-memory test database.

    There, the live server's threads either share one connection (when Django handed them the
    test's, which it does if the test database existed when the server started), so two requests
    at once (a webhook and a page, say) would interleave their transactions on it, or each open
    their own to the shared in-memory database, as does the test's thread while Playwright's
    event loop runs in it; writes then meet SQLite's table locks ("database table is locked"),
    which are not waited for but fail at once.  Serving one request at a time, and letting the test hold the
    same lock while it touches the database (`LivePortal.quiet`), keeps SQLite runs as
    deterministic as PostgreSQL ones."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.RLock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


@dataclass
class LivePortal:
    """The portal on pytest-django's live server; its Stripe is the emulator (API, Stripe.js, 3-D
    Secure pages), which sends signed webhooks to the live server as Stripe would."""

    url: str
    emulator: Emulator
    api: Any  # the official client on the emulator: arranges and checks Stripe's side
    webhook_endpoint: str
    _serial: _OneRequestAtATime | None = None

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Touch the database from the test while no request is being served (SQLite only; on
        PostgreSQL every thread has its own connection and this does nothing)."""
        if self._serial is None:
            yield
            return
        with self._serial.lock:
            yield

    def webhooks_delivered(self, timeout: float = 20.0) -> None:
        """Wait until every event the emulator sent to the portal has had its last delivery
        attempt (retries included), and check that the portal accepted each one."""
        settled = self.emulator.dispatcher.settled(self.webhook_endpoint, timeout)
        undelivered = self.undelivered_events()
        if undelivered or not settled:
            pending = "" if settled else f"; deliveries still pending after {timeout}s"
            raise AssertionError(f"webhooks not accepted by the portal: {undelivered}{pending}")

    def undelivered_events(self) -> list[str]:
        """Events sent to the portal's endpoint that no delivery has brought home yet (the portal
        answered an error, so the emulator retries later)."""
        state = self.emulator.state
        with state.lock:
            ours = [d for d in state.deliveries if d["endpoint"] == self.webhook_endpoint]
        return sorted({d["event"] for d in ours} - {d["event"] for d in ours if d["ok"]})


@pytest.fixture(scope="module")
def portal_chromium() -> Iterator[Any]:
    """A browser of the module's own, for tests that also use the database.

    Playwright's sync API marks its event loop as running in the test's thread for as long as it
    is open, and Django then refuses ORM calls from the test ("async context").  The test's
    queries are ordinary synchronous code, so that check is off while this browser is open, and
    the browser closes with the module, so that later database tests run with the check on (the
    session-wide `chromium` stays for the tests without a database, which run last)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with _launched_chromium() as browser:
            yield browser


@pytest.fixture()
def customer_browser(portal_chromium: Any) -> Iterator[Shopper]:
    """A customer's tab on the live portal, in a laptop-sized window."""
    opened = open_tab(portal_chromium, viewport={"width": 1024, "height": 900})
    script_errors = opened.script_errors

    def console(message: Any) -> None:
        # A refused request (a declined card's 402, a blocked script) is logged too; it is not a bug.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            script_errors.append(message.text)

    opened.page.on("pageerror", lambda error: script_errors.append(str(error)))
    opened.page.on("console", console)
    yield opened
    opened.page.context.close()
    assert opened.blocked == [], f"requests left loopback: {opened.blocked}"
    assert script_errors == [], f"errors in the page's scripts: {script_errors}"
    assert opened.csp_violations == [], f"the Content-Security-Policy refused: {opened.csp_violations}"


def _serial_lock(serial: _OneRequestAtATime | None) -> Any:
    return serial.lock if serial is not None else contextlib.nullcontext()


@pytest.fixture()
def live_portal(
    live_server: Any, stripe_emulated: Emulator, settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LivePortal]:
    """The live portal with the catalog synced, Stripe.js from the emulator and a webhook endpoint
    registered with the emulator, whose signing secret the portal verifies with."""
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

    from tests.billing.conftest import restore_catalog
    from tests.portal_support import stripe_client

    httpd = live_server.thread.httpd
    original_app = httpd.get_app()
    serial = None
    database = connections["default"]
    if isinstance(database, SQLiteWrapper) and database.is_in_memory_db():
        serial = _OneRequestAtATime(original_app)
        httpd.set_app(serial)
    settings.STRIPE_JS_URL = f"{stripe_emulated.url}/v3/"
    # First: restoring the catalog replaces the emulator's state.
    with _serial_lock(serial):
        restore_catalog(stripe_emulated, tmp_path_factory)
    api = stripe_client()
    endpoint = api.v1.webhook_endpoints.create(
        params={"url": f"{live_server.url}/billing/webhooks/stripe/", "enabled_events": ["*"]}
    )
    settings.STRIPE_WEBHOOK_SECRET = endpoint.secret
    portal = LivePortal(
        url=live_server.url, emulator=stripe_emulated, api=api, webhook_endpoint=endpoint.id, _serial=serial
    )
    try:
        yield portal
        # Every webhook reached the portal and was accepted: a rejected one is a bug.
        portal.webhooks_delivered()
    finally:
        # Nothing may arrive while the database is emptied for the next test.
        api.v1.webhook_endpoints.delete(endpoint.id)
        stripe_emulated.dispatcher.clear()
        stripe_emulated.dispatcher.idle(15.0)
        httpd.set_app(original_app)


# --------------------------------------------------------------------------- accessibility

AXE_SOURCE = HERE / "node_modules" / "axe-core" / "axe.min.js"
# What a page may not have: axe-core's two worst impacts.
AXE_IMPACTS = ("serious", "critical")


def axe_violations(page: Any) -> list[str]:
    """Run axe-core (installed from npm by `make browser-deps`) on the page as it is now and return
    its serious and critical violations, one line each.  Injected through the DevTools protocol,
    not as a <script>, so the page's Content-Security-Policy neither blocks nor reports it."""
    if not AXE_SOURCE.exists():
        pytest.fail(f"no axe-core at {AXE_SOURCE}: run `make browser-deps` (npm ci in tests/browser)")
    page.evaluate(AXE_SOURCE.read_text() + "\n;undefined")
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {', '.join(v['nodes'][:5])}"
        for v in found
        if v["impact"] in AXE_IMPACTS
    ]


def small_targets(page: Any, minimum: int = 44) -> list[str]:
    """Buttons, links standing alone, form controls and the labels that make checkboxes and radio
    buttons clickable, smaller than `minimum` px (CSS) in either direction.  A link inside a
    sentence is exempt (WCAG's inline exception); so is a checkbox or radio button whose label,
    clicked instead, is large enough."""
    return list(
        page.evaluate(
            """(minimum) => {
              const small = [];
              const inSentence = (el) => el.tagName === 'A' && el.closest('p, li, dd') &&
                (el.closest('p, li, dd').textContent.trim() !== el.textContent.trim());
              const big = (el) => { const r = el.getBoundingClientRect();
                return r.width >= minimum - 0.5 && r.height >= minimum - 0.5; };
              const visible = (el) => { const r = el.getBoundingClientRect();
                return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'; };
              for (const el of document.querySelectorAll('a[href], button, input, select, textarea, summary')) {
                if (!visible(el) || el.type === 'hidden' || inSentence(el)) continue;
                let target = el;
                if (el.type === 'checkbox' || el.type === 'radio') {
                  target = el.closest('label') || (el.id && document.querySelector(`label[for="${el.id}"]`)) || el;
                }
                if (!big(target)) {
                  const r = target.getBoundingClientRect();
                  small.push(`${el.outerHTML.slice(0, 80)} is ${Math.round(r.width)}x${Math.round(r.height)}`);
                }
              }
              return small;
            }""",
            minimum,
        )
    )


SIZES = {
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}


def each_width(chromium: Any) -> Iterator[tuple[str, Shopper]]:
    """A tab at a phone's size, then one at a desktop's (for screenshots and the layout checks),
    each closed after its turn and checked to have stayed on loopback and within the page's
    Content-Security-Policy."""
    for name, options in SIZES.items():
        tab = open_tab(chromium, **options)
        try:
            yield name, tab
        finally:
            tab.page.context.close()
        assert tab.blocked == [], f"requests left loopback: {tab.blocked}"
        assert tab.csp_violations == [], f"the Content-Security-Policy refused: {tab.csp_violations}"
