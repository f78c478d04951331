"""Behaviour that only the production parts can show: real concurrency, a real worker."""

import threading
from collections import Counter

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model

from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth, start_request
from tests.integration.conftest import wait_for

FORM = "application/x-www-form-urlencoded"


@pytest.mark.django_db(transaction=True)
def test_concurrent_polls_on_an_approved_request_issue_tokens_exactly_once(alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(Client(), app, secret, "scope=openid&login_hint=alice")
    AuthenticationRequest.objects.get(auth_req_id=auth_req_id).transition_to(
        AuthenticationRequest.State.APPROVED, decided_at=timezone.now()
    )
    n = 8
    barrier = threading.Barrier(n)
    results: list[object] = []

    def poll():
        try:
            barrier.wait()
            response = Client().post(
                "/o/token/",
                f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}",
                content_type=FORM,
                HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
            )
            results.append(response.status_code if response.status_code == 200 else response.json()["error"])
        finally:
            connection.close()

    threads = [threading.Thread(target=poll) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(results) == Counter({200: 1, "invalid_grant": n - 1})
    assert get_access_token_model().objects.count() == 1
    assert get_refresh_token_model().objects.count() == 1
    assert get_id_token_model().objects.count() == 1  # the losers left no orphan ID tokens


def test_the_cache_is_redis():
    cache.set("ciba-integration", "ok", 5)
    assert cache.get("ciba-integration") == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_notifies_the_authentication_device(celery_worker_process, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(Client(), app, secret, "scope=openid&login_hint=alice&binding_message=W4SCT")
    assert wait_for(lambda: cache.get(f"ciba-test-notified:{auth_req_id}")) == "W4SCT"
