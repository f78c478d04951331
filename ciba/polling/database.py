"""The default poll state: every poll is counted in the request's own row."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import F

from ..conf import ciba_settings
from ..models import AuthenticationRequest
from .store import PENDING, SLOW_DOWN, PollState


class DatabasePollState(PollState):
    """Counts each pending poll with one UPDATE of ``last_polled_at`` (and ``interval``).

    CIBA §11: after ``slow_down`` the client must add the increment "for this and all
    subsequent requests", so the stored interval grows with every early poll.
    """

    def record_poll(self, ar: Any, fingerprint: str | None, now: datetime) -> str:
        too_fast = ar.last_polled_at is not None and now - ar.last_polled_at < timedelta(seconds=ar.interval)
        update: dict[str, Any] = {"last_polled_at": now}
        if too_fast:
            update["interval"] = F("interval") + ciba_settings.SLOW_DOWN_INCREMENT
        AuthenticationRequest.objects.filter(pk=ar.pk).update(**update)
        return SLOW_DOWN if too_fast else PENDING
