"""A stand-in for Twilio's Messages API (the part the portal uses), for tests: a threaded HTTP
server on a free loopback port that answers `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
as Twilio documents it.

- HTTP Basic auth with the account sid and auth token; otherwise 401, code 20003 "Authenticate".
- Form-encoded `To`, `From` or `MessagingServiceSid`, `Body`.  `To` must be E.164 (else 400,
  21211); a number in `unsubscribed` answers 21610 (the recipient replied STOP) and one in
  `landlines` 21614 (not a mobile number); a missing sender is 21603, a missing body 21602, a body
  over 1600 characters 21617.
- Success is 201 with a Message resource: sid "SM" + 32 hex digits, status "queued",
  num_segments counted as an SMS is (GSM-7: 160 septets, or 153 a part; otherwise UCS-2: 70 code
  units, or 67 a part).  Through a messaging service Twilio has not chosen a sender yet: status
  "accepted", no `from`, num_segments "0".

Every request is recorded in `received`.  `fail_next(n, status=503 or 429)` answers the next n
requests with that error; `hang_next(n)` holds the next n answers until the client has given up
(released by `release()`, `stop()` or `reset()`, never by a clock in the test); `holding` says
how many requests it holds right now.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email.utils
import json
import math
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

API_VERSION = "2010-04-01"
PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
MAX_BODY = 1600

# GSM 03.38: the basic set costs one septet, the extension table two (an escape, then the character).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"


def segments(body: str) -> tuple[str, int]:
    """The encoding an SMS with this body is sent in, and how many parts it takes."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        septets = sum(2 if c in GSM7_EXTENSION else 1 for c in body)
        return "GSM-7", 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else math.ceil(units / 67)


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the stand-in saw it, and what it answered."""

    method: str
    path: str
    username: str | None
    password: str | None
    form: dict[str, str]
    headers: dict[str, str]
    status: int


class TwilioStandin:
    def __init__(self, *, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.unsubscribed: set[str] = set()
        self.landlines: set[str] = set()
        self.received: list[Received] = []
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._hangs = 0
        self._holding = 0
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------------- control

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TwilioStandin:
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="twilio-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        """Forget what was received and any failures still planned; let hanging answers go."""
        with self._lock:
            self.received.clear()
            self.messages.clear()
            self.unsubscribed.clear()
            self.landlines.clear()
            self._failures.clear()
            self._hangs = 0
        self._release.set()
        self._release = threading.Event()

    def fail_next(self, count: int = 1, *, status: int = 503) -> None:
        """Answer the next `count` requests with 503 (Twilio down) or 429 (too many requests)."""
        if status not in (429, 500, 502, 503):
            raise ValueError(f"fail_next: {status} is not an outage")
        with self._lock:
            self._failures.extend([status] * count)

    def hang_next(self, count: int = 1) -> None:
        """Take the next `count` requests and answer none of them until released."""
        with self._lock:
            self._hangs += count

    @property
    def holding(self) -> int:
        """How many requests it has taken and holds unanswered right now (hang_next)."""
        with self._lock:
            return self._holding

    def release(self) -> None:
        """Let the answers it holds go (a 503 each, to whoever still waits for one), keeping what
        was received."""
        with self._lock:
            release, self._release = self._release, threading.Event()
        release.set()

    # ----------------------------------------------------------------------- answering

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _planned(self) -> tuple[int | None, threading.Event | None]:
        with self._lock:
            if self._hangs:
                self._hangs -= 1
                return None, self._release
            if self._failures:
                return self._failures.pop(0), None
        return None, None

    def answer(
        self, *, method: str, path: str, auth: tuple[str, str] | None, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        match = PATH.match(path)
        if method != "POST" or match is None:
            return _error(404, 20404, f"The requested resource {path} was not found")
        if (
            auth is None
            or auth != (self.account_sid, self.auth_token)
            or match.group("account") != self.account_sid
        ):
            return _error(401, 20003, "Authenticate")
        outage, hang = self._planned()
        if hang is not None:
            with self._lock:
                self._holding += 1
            hang.wait()
            with self._lock:
                self._holding -= 1
            return _error(503, 20503, "Service Unavailable")
        if outage == 429:
            return _error(429, 20429, "Too Many Requests")
        if outage is not None:
            return _error(outage, 20500, "Internal Server Error" if outage == 500 else "Service Unavailable")
        return self._create(form)

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        sender = form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        body = form.get("Body", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in self.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to in self.landlines:
            return _error(400, 21614, f"'To' number {to} is not a valid mobile number")
        _, parts = segments(body)
        sid = "SM" + secrets.token_hex(16)
        now = email.utils.format_datetime(dt.datetime.now(dt.UTC))  # RFC 2822, "+0000"
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": "0" if service and not sender else str(parts),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        with self._lock:
            self.messages.append(message)
        return 201, message


class _Handler(BaseHTTPRequestHandler):
    standin: TwilioStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests read `received`, not a log on stderr

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        auth = _basic_auth(self.headers.get("Authorization", ""))
        status, payload = self.standin.answer(method=self.command, path=self.path, auth=auth, form=form)
        received = Received(
            method=self.command,
            path=self.path,
            username=auth[0] if auth else None,
            password=auth[1] if auth else None,
            form=form,
            headers=dict(self.headers.items()),
            status=status,
        )
        self.standin.record(received)
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a hang): nobody to answer


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        username, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except ValueError:
        return None
    return (username, password) if sep else None
