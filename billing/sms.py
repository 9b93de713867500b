"""Text message backends beyond the two in billing/channels.py: a file of JSON lines (development,
the demo's mailbox) and Twilio's Messages API through Twilio's official client.

Kept out of channels.py so that importing channels (every web and worker process) does not import
the Twilio client; `BILLING_SMS_BACKEND` names `billing.sms.FileSmsBackend` or
`billing.sms.TwilioSmsBackend`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from billing.channels import ChannelUnavailable, MessageRefused

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- file


FILE_NAME = "texts.jsonl"


@dataclasses.dataclass(frozen=True)
class Text:
    to: str
    text: str
    sent_at: dt.datetime


class FileSmsBackend:
    """Appends each text message as one JSON line to `BILLING_SMS_FILE_PATH`/texts.jsonl.

    The web server, the worker and the demo's ticker may send at once: the file is opened with
    O_APPEND and each line goes out in a single write(), so lines from different processes never
    interleave (the kernel places each appending write at the end as one piece)."""

    def __init__(self, *, folder: Path | None = None) -> None:
        self.folder = Path(folder if folder is not None else settings.BILLING_SMS_FILE_PATH)

    def send(self, *, to: str, text: str) -> None:
        record = {"to": to, "text": text, "sent_at": dt.datetime.now(dt.UTC).isoformat()}
        # ensure_ascii keeps the line free of raw newlines and of encodings a reader could trip on.
        line = (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / FILE_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:  # a full or read-only disk: the transport, not the message
            raise ChannelUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if written != len(line):
            # Writing the rest separately could interleave with another process's line.
            raise ChannelUnavailable(f"short write to {FILE_NAME}: {written} of {len(line)} bytes")


def read_texts(*, folder: Path) -> list[Text]:
    """What FileSmsBackend wrote to `folder`, oldest first, newest last."""
    path = Path(folder) / FILE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    texts: list[Text] = []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
            texts.append(
                Text(
                    to=str(record["to"]),
                    text=str(record["text"]),
                    sent_at=dt.datetime.fromisoformat(record["sent_at"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            # A line cut short (the disk filled up mid-write) is skipped, not the whole mailbox.
            continue
    # Processes append in the order they reach the file, which can differ by a hair from the
    # order of their clocks; sorted (stably) so "newest last" holds.
    texts.sort(key=lambda t: t.sent_at)
    return texts


# --------------------------------------------------------------------------- Twilio

TWILIO_API = "https://api.twilio.com"


class SmsRejected(MessageRefused):
    """The provider refused this message for good (an invalid or unsubscribed number, a body it
    won't take, our credentials): trying again later won't help.  `code` is Twilio's error code."""

    def __init__(self, message: str, *, code: int | None, status: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class _BaseRewritingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type information
    """Twilio's own HTTP client (requests, its headers, its auth) with the scheme and host of every
    URL replaced by `TWILIO_API_BASE`, so the official client can talk to a stand-in."""

    def __init__(self, *, base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = urlsplit(base)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        url = urlunsplit(
            (
                self.base.scheme,
                self.base.netloc,
                self.base.path.rstrip("/") + parts.path,
                parts.query,
                parts.fragment,
            )
        )
        response: Response = super().request(method, url, *args, **kwargs)
        return response


def _http_client(*, timeout: float) -> Any:
    base = str(settings.TWILIO_API_BASE or "")
    if base:
        return _BaseRewritingHttpClient(base=base, timeout=timeout)
    return TwilioHttpClient(timeout=timeout)


class TwilioSmsBackend:
    """Sends through Twilio's Messages API.

    Outages (no connection, a timeout, HTTP 429 or 5xx) raise ChannelUnavailable and the outbox
    tries again later; anything else Twilio refuses raises SmsRejected, which the outbox ends
    after the policy's attempts.  A timeout after Twilio took the message means it may go twice:
    the Messages API has no idempotency key to prevent that."""

    def __init__(self) -> None:
        self.account_sid = str(settings.TWILIO_ACCOUNT_SID or "")
        self._auth_token = str(settings.TWILIO_AUTH_TOKEN or "")
        self.sender = str(settings.TWILIO_FROM or "")
        missing = [
            name
            for name, value in (
                ("TWILIO_ACCOUNT_SID", self.account_sid),
                ("TWILIO_AUTH_TOKEN", self._auth_token),
                ("TWILIO_FROM", self.sender),
            )
            if not value
        ]
        if missing:
            raise ImproperlyConfigured(f"TwilioSmsBackend needs {', '.join(missing)} in the environment")
        self.timeout = float(settings.TWILIO_TIMEOUT_SECONDS)

    def __repr__(self) -> str:
        # Never the token, whoever prints the backend.
        return f"<TwilioSmsBackend {self.account_sid}>"

    def send(self, *, to: str, text: str) -> None:
        http_client = _http_client(timeout=self.timeout)
        client = Client(self.account_sid, self._auth_token, http_client=http_client)
        # A messaging service picks the sender from its pool; otherwise TWILIO_FROM is the number.
        sender: dict[str, str] = (
            {"messaging_service_sid": self.sender} if self.sender.startswith("MG") else {"from_": self.sender}
        )
        try:
            message = client.messages.create(to=to, body=text, **sender)
        except requests.RequestException as exc:  # no connection, a timeout, a broken answer
            raise ChannelUnavailable(self._scrubbed(f"Twilio unreachable: {type(exc).__name__}")) from exc
        except TwilioException as exc:
            raise self._refusal(exc) from exc
        finally:
            if http_client.session is not None:
                http_client.session.close()
        logger.info("SMS accepted by Twilio as %s (%s segments)", message.sid, message.num_segments)

    def _refusal(self, exc: TwilioException) -> Exception:
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None)
        # Twilio's own words (TwilioRestException.msg, or an RFC 9457 problem's title and detail),
        # not str(exc), which adds terminal colours when stderr is a terminal.
        words = getattr(exc, "msg", None) or " ".join(
            str(part) for part in (getattr(exc, "title", ""), getattr(exc, "detail", "")) if part
        )
        text = self._scrubbed(f"Twilio HTTP {status}, code {code}: {words or type(exc).__name__}")
        if status == 429 or (isinstance(status, int) and status >= 500):
            return ChannelUnavailable(text)
        return SmsRejected(text, code=code if isinstance(code, int) else None, status=status)

    def _scrubbed(self, text: str) -> str:
        # Staff read this in the admin (Delivery.last_error); the token must never reach it.
        return text.replace(self._auth_token, "[redacted]") if self._auth_token else text
