from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import handlers
from billing.models import StripeEvent

Status = StripeEvent.Status


class Command(BaseCommand):
    help = (
        "Process stored Stripe events again: the failed and retrying ones (default), or given ids "
        "(evt_...), even if processed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_ids", nargs="*", help="Stripe event ids to replay, even if processed")
        parser.add_argument("--include-pending", action="store_true", help="also events never processed")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["event_ids"]:
            events = StripeEvent.objects.filter(stripe_id__in=options["event_ids"])
            missing = set(options["event_ids"]) - set(events.values_list("stripe_id", flat=True))
            if missing:
                raise CommandError(f"Not stored: {', '.join(sorted(missing))}")
            # An explicit replay runs the handler again: it re-reads Stripe, so it is harmless.
            events.update(status=Status.PENDING)
        else:
            statuses = [Status.FAILED, Status.RETRYING]
            if options["include_pending"]:
                statuses.append(Status.PENDING)
            events = StripeEvent.objects.filter(status__in=statuses)
        ok = failed = 0
        for pk in list(events.order_by("stripe_created").values_list("pk", flat=True)):
            status = handlers.process(event_pk=pk)
            if status in (Status.PROCESSED, Status.IGNORED):
                ok += 1
            else:
                failed += 1
                event = StripeEvent.objects.get(pk=pk)
                self.stderr.write(f"{event.stripe_id}: {event.last_error}")
        self.stdout.write(f"replayed {ok} event(s), {failed} failed")
        if failed:
            raise CommandError(f"{failed} event(s) failed again")
