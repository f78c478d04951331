"""User-code budgets hold on PostgreSQL under concurrency: a burst of wrong codes sent at once
buys no more password hashes than the budget, and leaves other clients untouched."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from oauth2_provider.models import get_application_model

from ciba import user_codes

Application = get_application_model()
BURST = 16


def client_app(name: str) -> Any:
    return Application.objects.create(
        name=name,
        client_type="confidential",
        authorization_grant_type="client-credentials",
        client_secret=secrets.token_urlsafe(32),
    )


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_wrong_codes_buys_no_more_hashes_than_the_budget(settings, monkeypatch):
    settings.CIBA = {**settings.CIBA, "USER_CODE_MAX_FAILURES": 5}
    alice = get_user_model().objects.create_user("alice", "alice@example.com", "pw")
    user_codes.set_user_code(alice, "7391-44")
    stranger, own = client_app("Stranger"), client_app("Alice's bank")
    hashed: list[float] = []
    real = user_codes.check_password

    def slow_hash(*args: Any, **kwargs: Any) -> bool:
        hashed.append(time.monotonic())
        time.sleep(0.2)  # a real hash's time, so that the burst overlaps it
        return real(*args, **kwargs)

    monkeypatch.setattr(user_codes, "check_password", slow_hash)
    start = threading.Barrier(BURST)
    verdicts: list[user_codes.Verdict] = []

    def guess() -> None:
        try:
            start.wait()
            verdicts.append(user_codes.verify(alice, "guess-1", client=stranger))
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(verdicts) == BURST
    assert 1 <= len(hashed) <= 5, len(hashed)
    assert verdicts.count(user_codes.Verdict.REFUSED) >= BURST - 5
    assert user_codes.verify(alice, "7391-44", client=own) is user_codes.Verdict.RIGHT
