"""A real Chromium, offline, against the in-process emulator, plus a tiny merchant site on
another loopback port (so the card form's iframe is cross-origin, as with Stripe).

Needs the ``playwright`` pip package and a system Chromium (Debian: ``apt-get install
chromium``); ``playwright install`` is not used. The tests skip when either is missing."""

from __future__ import annotations

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
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
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

    def api_calls(self, fragment: str = "/v1/") -> list[str]:
        return [url for url in self.requests if fragment in url]


def _merchant_handler(stripe_js_url: str) -> type[BaseHTTPRequestHandler]:
    template = (HERE / "merchant.html").read_text()
    page = (template.replace("{{STRIPE_JS_URL}}", stripe_js_url)
            .replace("{{PUBLISHABLE_KEY}}", json.dumps(PUBLISHABLE_KEY)))

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
    if not pathlib.Path(CHROMIUM).exists():
        # A missing browser is a broken set-up, never a reason to pass: fail loudly.
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser-deps` (apt-get install chromium)")
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(chromium: Any, **context_options: Any) -> Shopper:
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
    return shopper


@pytest.fixture()
def shopper(chromium: Any) -> Iterator[Shopper]:
    opened = _open(chromium, viewport={"width": 900, "height": 900})
    yield opened
    opened.page.context.close()
    assert opened.blocked == [], f"requests left loopback: {opened.blocked}"


@pytest.fixture()
def phone_shopper(chromium: Any) -> Iterator[Shopper]:
    opened = _open(chromium, viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True,
                   has_touch=True)
    yield opened
    opened.page.context.close()
    assert opened.blocked == [], f"requests left loopback: {opened.blocked}"


@pytest.fixture(scope="session")
def artifacts() -> pathlib.Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
