"""/dev/mailbox/: the emails and text messages the development file backends wrote, newest
first (DEBUG only).

Django's file backend appends each message to a .log file, separated by a line of 79
dashes; we split them again and show subject, recipient, text and links.  Text messages come from
billing.sms.FileSmsBackend's file of JSON lines (BILLING_SMS_FILE_PATH).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from pathlib import Path

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from billing.sms import Text, read_texts

SEPARATOR = "-" * 79
# The HTML part is shown in a sandboxed iframe; its links must open in the window, not inside the
# frame, where the portal refuses to be shown (X-Frame-Options: DENY).
LINKS_LEAVE_FRAME = '<base target="_top">'
_HTML_START = re.compile(r"<html\b[^>]*>", re.IGNORECASE)


def _links_leave_frame(html: str) -> str:
    if not html:
        return html
    head = re.search(r"<head\b[^>]*>", html, re.IGNORECASE)
    if head:
        return html[: head.end()] + LINKS_LEAVE_FRAME + html[head.end() :]
    start = _HTML_START.search(html)
    if start:
        return html[: start.end()] + f"<head>{LINKS_LEAVE_FRAME}</head>" + html[start.end() :]
    return LINKS_LEAVE_FRAME + html


@dataclass
class Mail:
    key: str
    subject: str
    to: str
    date: str
    text: str
    html: str


def _messages() -> list[Mail]:
    folder = Path(settings.EMAIL_FILE_PATH)
    if not folder.is_dir():
        return []
    found: list[Mail] = []
    for path in sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        # Bytes, not text: parsed from a str, an 8bit UTF-8 body decodes to escapes ("\\u20ac" for €).
        chunks = [c.strip(b"\n") for c in path.read_bytes().split(SEPARATOR.encode())]
        for index, chunk in enumerate(c for c in chunks if c.strip()):
            msg = email.message_from_bytes(chunk, policy=email.policy.default)
            text = html = ""
            for part in msg.walk():
                if part.get_content_type() == "text/plain" and not text:
                    text = str(part.get_content())
                elif part.get_content_type() == "text/html" and not html:
                    html = str(part.get_content())
            found.append(
                Mail(
                    key=f"{path.stem}-{index}",
                    subject=str(msg.get("Subject", "")),
                    to=str(msg.get("To", "")),
                    date=str(msg.get("Date", "")),
                    text=text,
                    html=_links_leave_frame(html),
                )
            )
    return found


def _texts() -> list[Text]:
    return list(reversed(read_texts(folder=Path(settings.BILLING_SMS_FILE_PATH))))


def _debug_only() -> None:
    if not settings.DEBUG:
        raise Http404


# An email's HTML, shown in a sandboxed srcdoc frame, inherits the page's policy: let its inline styles be.
_EMAIL_STYLES = csp_update({"style-src": [UNSAFE_INLINE]})


@_EMAIL_STYLES
def mailbox(request: HttpRequest) -> HttpResponse:
    _debug_only()
    return render(request, "portal/dev/mailbox.html", {"mails": _messages(), "texts": _texts()})


@_EMAIL_STYLES  # type: ignore[arg-type]  # django-csp types its decorators for one-argument views
def message(request: HttpRequest, name: str) -> HttpResponse:
    _debug_only()
    for mail in _messages():
        if mail.key == name:
            return render(request, "portal/dev/mailbox.html", {"mails": [mail], "one": True})
    raise Http404
