"""Expire CIBA requests past their lifetime, and optionally delete old finished ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ciba import services
from ciba.models import AuthenticationRequest


class Command(BaseCommand):
    help = (
        "Mark every unfinished CIBA request past expires_at as expired (push clients get the "
        "expired_token callback), in batches. With --delete-finished-older-than DAYS, also delete "
        "denied, expired and issued requests last changed more than DAYS ago. Safe to run while "
        "the server is serving polls and approvals, and from several hosts at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per batch (default 500).")
        parser.add_argument(
            "--delete-finished-older-than",
            type=float,
            metavar="DAYS",
            help="Also delete finished requests older than this many days.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only count what would change.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            self.stderr.write(self.style.ERROR("--batch-size must be at least 1."))
            raise SystemExit(2)
        now = timezone.now()
        days = options["delete_finished_older_than"]
        if options["dry_run"]:
            due = AuthenticationRequest.objects.past_expiry(now).count()
            self.stdout.write(f"{due} request(s) would be marked expired.")
            if days is not None:
                cutoff = now - timedelta(days=days)
                finished = AuthenticationRequest.objects.filter(
                    state__in=AuthenticationRequest.FINISHED, updated_at__lt=cutoff
                ).count()
                self.stdout.write(f"{finished} finished request(s) would be deleted.")
            return
        expired = services.expire_due(now=now, batch_size=batch_size)
        self.stdout.write(f"{expired} request(s) marked expired.")
        if days is not None:
            deleted = services.delete_finished(
                older_than=timedelta(days=days), batch_size=batch_size, now=now
            )
            self.stdout.write(f"{deleted} finished request(s) deleted.")
