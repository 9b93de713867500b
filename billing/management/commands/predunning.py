from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.services import predunning


class Command(BaseCommand):
    help = (
        "Run the pre-dunning scan (card expiring before the next charge, quarterly and yearly renewals) "
        "as the nightly job does; it goes on from where tonight's run stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", help="run as of this moment (ISO 8601, UTC if no offset), e.g. for a demo"
        )
        parser.add_argument(
            "--restart", action="store_true", help="start tonight's run over from the first slice"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = None
        if options["now"]:
            try:
                now = dt.datetime.fromisoformat(options["now"])
            except ValueError as exc:
                raise CommandError(f"--now: not an ISO 8601 moment: {options['now']!r}") from exc
            if now.tzinfo is None:
                now = now.replace(tzinfo=dt.UTC)
        summary = predunning.run(now=now, restart=options["restart"])
        self.stdout.write(
            f"{summary.card_reminders} card reminders, {summary.renewal_reminders} renewal reminders, "
            f"{summary.capped} held by the daily cap; {summary.slices} slices from id {summary.resumed_from}"
        )
