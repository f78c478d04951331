"""Responses racing each other: a challenge is consumed by exactly one of them.

The same assertion posted from several threads at once (each its own database connection, as
separate workers would be) approves once; every other is told it was already used. This is
real concurrency on the DELETE that consumes it, so it runs in the production tier on
PostgreSQL: SQLite's in-memory test database answers concurrent writers "table is locked".
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from ciba import passkeys
from ciba.errors import InvalidAuthentication
from ciba.models import Passkey, WebAuthnChallenge
from tests.test_passkeys import enroll, http_request, make_request
from tests.webauthn_authenticator import SoftAuthenticator

THREADS = 6


def race(call: Any) -> list[Any]:
    """Run ``call`` in THREADS threads released together; each result or exception."""
    barrier, results = threading.Barrier(THREADS), []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait()
            try:
                outcome: Any = call()
            except Exception as exc:  # collected, judged by the test
                outcome = exc
            with lock:
                results.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_one_assertion_posted_many_times_at_once_approves_once(alice, make_client):
    phone = SoftAuthenticator()
    passkey = enroll(alice, phone)
    ar = make_request(make_client()[0], alice)
    assertion = phone.get(passkeys.approval_options(http_request(), ar, alice))

    results = race(lambda: passkeys.verify_approval(http_request(), ar, alice, assertion))

    accepted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(accepted) == 1, results
    assert all(isinstance(r, InvalidAuthentication) and "already used" in r.description for r in refused), (
        refused
    )
    assert not WebAuthnChallenge.objects.exists()
    passkey.refresh_from_db()
    assert passkey.sign_count == 1 and passkey.cloned_at is None
    assert Passkey.objects.filter(pk=passkey.pk).exists()
