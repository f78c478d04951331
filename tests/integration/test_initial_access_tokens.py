"""Initial access tokens spent by registrations racing on PostgreSQL: a token admits exactly as
many registrations as it has uses, however many arrive at once, and a registration that fails
after spending a use gives it back."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import RequestFactory

from ciba.client_registration import initial_access_tokens
from ciba.client_registration.admission import admit
from ciba.errors import InvalidToken
from ciba.models import InitialAccessToken

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENT = {"client_name": "Kiosk", "grant_types": ["urn:openid:params:grant-type:ciba"]}


def registration(token: str) -> Any:
    return RequestFactory().post(
        "/o/register/",
        json.dumps(DOCUMENT),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def race(token: str, registrations: int, *, fail_after_consume: bool = False) -> Counter[str]:
    """``registrations`` threads, each admitted before any spends, then spending the token's use
    in its own transaction while holding it open a moment (as saving a client does)."""
    barrier = threading.Barrier(registrations)
    outcomes: list[str] = []

    def register() -> None:
        try:
            with transaction.atomic():
                admission = admit(registration(token), dict(DOCUMENT))
                barrier.wait()
                admission.consume()
                time.sleep(0.05)
                if fail_after_consume:
                    raise RuntimeError("the client could not be saved")
            outcomes.append("registered")
        except InvalidToken:
            outcomes.append("invalid_token")
        except RuntimeError:
            outcomes.append("failed")
        finally:
            connection.close()

    threads = [threading.Thread(target=register) for _ in range(registrations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Counter(outcomes)


def test_a_token_of_three_uses_admits_exactly_three_of_ten_simultaneous_registrations() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=3)

    assert race(token, 10) == Counter({"registered": 3, "invalid_token": 7})
    row.refresh_from_db()
    assert row.uses_left == 0


def test_a_single_use_token_admits_one_of_eight_simultaneous_registrations() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=1)

    assert race(token, 8) == Counter({"registered": 1, "invalid_token": 7})
    row.refresh_from_db()
    assert row.uses_left == 0


def test_registrations_that_fail_after_spending_give_the_uses_back() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=2)

    outcomes = race(token, 4, fail_after_consume=True)

    # Those that spent a use failed and rolled back; the others saw no use left meanwhile.
    assert outcomes["failed"] >= 2 and outcomes["registered"] == 0
    row.refresh_from_db()
    assert row.uses_left == 2
    assert race(token, 2) == Counter({"registered": 2})


def test_a_token_revoked_during_a_registration_is_not_spent_by_it() -> None:
    token, row = initial_access_tokens.issue("Acme", uses=None)
    admitted = threading.Event()
    revoked = threading.Event()
    outcome: list[str] = []

    def register() -> None:
        try:
            with transaction.atomic():
                admission = admit(registration(token), dict(DOCUMENT))
                admitted.set()
                revoked.wait(5)
                admission.consume()
            outcome.append("registered")
        except InvalidToken:
            outcome.append("invalid_token")
        finally:
            connection.close()

    thread = threading.Thread(target=register)
    thread.start()
    admitted.wait(5)
    initial_access_tokens.revoke(row.pk)
    revoked.set()
    thread.join()

    assert outcome == ["invalid_token"]
    assert InitialAccessToken.objects.get(pk=row.pk).revoked is not None
