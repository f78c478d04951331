"""A shown code ("show my code", ``ciba.hint_tokens``) starts exactly one request, however many
clients send it at once, on PostgreSQL.

Round after round, one code is posted to the backchannel endpoint from several threads at once
(each its own database connection, as separate workers would be; two kiosks, so that the
clients differ too): exactly one request is created, and every other answer is
``invalid_request`` "already used". The arbiter is the one conditional UPDATE that marks the
handle used; this is real concurrency on it, which SQLite's in-memory test database cannot
give (it answers concurrent writers "table is locked").
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, RequestFactory
from oauth2_provider.models import get_application_model

from ciba import hint_tokens
from ciba.models import AuthenticationRequest, LoginHintHandle
from tests.conftest import basic_auth

pytestmark = pytest.mark.django_db(transaction=True)

Application = get_application_model()
URL = "/o/backchannel-authentication/"
THREADS = 8
ROUNDS = 6


def race(token: str, kiosks: list[tuple[Any, str]]) -> Counter:
    """``token`` sent by THREADS threads released together, alternating kiosks; each answer as
    (status, error, whether it says "already used")."""
    start = threading.Barrier(THREADS)
    answers: Counter = Counter()
    lock = threading.Lock()

    def send(i: int) -> None:
        app, secret = kiosks[i % len(kiosks)]
        try:
            start.wait(30)
            response = Client().post(
                URL,
                f"scope=openid&login_hint_token={token}",
                content_type="application/x-www-form-urlencoded",
                HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
            )
            body = response.json()
            outcome = (response.status_code, body.get("error", ""), "already used" in str(body))
        except Exception as exc:  # collected, judged by the test
            outcome = (0, repr(exc), False)
        finally:
            connection.close()
        with lock:
            answers[outcome] += 1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_one_code_sent_by_many_clients_at_once_starts_exactly_one_request(settings, make_client) -> None:
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": True}
    kiosks = [make_client(), make_client()]
    for round_ in range(ROUNDS):
        user = get_user_model().objects.create_user(f"customer{round_}", f"c{round_}@example.com", "pw")
        token = hint_tokens.issue(user, RequestFactory().post("/o/ciba/login-hint-token/")).token

        answers = race(token, kiosks)

        assert answers == {(200, "", False): 1, (400, "invalid_request", True): THREADS - 1}, answers
        assert AuthenticationRequest.objects.filter(user=user).count() == 1
        assert LoginHintHandle.objects.get(user=user).used_at is not None
