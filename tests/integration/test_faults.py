"""A hung or refused dependency costs a request a bounded time, answers JSON, and heals itself.

The real server (granian, as ``./scripts/serve`` runs it, with the fast lane) reaches
PostgreSQL, the Django cache's Redis and the poll state's Redis each through its own
``FaultProxy``; the test pauses (black-holes) or refuses one of them and asserts what clients
see: every answer within ``BOUND`` seconds, ``503 temporarily_unavailable`` (JSON, with
``Retry-After``) where the answer needs the dependency, pending polls answered from the poll
state while only PostgreSQL is down, and full service once the dependency is back, without a
restart. Breakers are shortened to 1 s so that recovery fits in a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection

from ciba.constants import CIBA_GRANT_TYPE
from tests.conftest import basic_auth
from tests.dpop import DPoPKey
from tests.integration.faultproxy import FaultProxy
from tests.integration.nginx import _stop, free_port
from tests.protocol import consent_bearer

ROOT = Path(__file__).resolve().parents[2]
#: The issue's bound: with any one dependency hung, every request answers within 3 s.
BOUND = 3.0
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BACKCHANNEL = "/o/backchannel-authentication/"
TOKEN = "/o/token/"
REQUESTS = "/o/ciba/requests/"

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Faults:
    """The server under test and the proxies between it and its dependencies."""

    url: str
    database: FaultProxy
    cache: FaultProxy
    poll_state: FaultProxy
    log: Path

    def post(self, path: str, body: str, **headers: str) -> tuple[requests.Response, float]:
        return timed(
            lambda: requests.post(self.url + path, data=body, headers={**FORM, **headers}, timeout=15)
        )

    def get(self, path: str, **headers: str) -> tuple[requests.Response, float]:
        return timed(lambda: requests.get(self.url + path, headers=headers, timeout=15))

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _redis(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379, parts.path or "/0"


@pytest.fixture
def faults(tmp_path: Path) -> Iterator[Faults]:
    cache_url = os.environ.get("CACHE_URL", "")
    if not cache_url.startswith("redis"):
        pytest.fail("The fault tests need CACHE_URL=redis://... (./scripts/test --production).")
    db = connection.settings_dict
    redis_host, redis_port, redis_db = _redis(cache_url)
    with ExitStack() as stack:
        database = FaultProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
        cache = FaultProxy(redis_host, redis_port)
        poll_state = FaultProxy(redis_host, redis_port)
        for proxy in (database, cache, poll_state):
            stack.callback(proxy.close)
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.integration.settings_faults",
            "DATABASE_URL": f"postgres://{db['USER']}@127.0.0.1:{database.port}/{db['NAME']}",
            "CACHE_URL": f"redis://127.0.0.1:{cache.port}{redis_db}",
            "CIBA_POLL_STATE_REDIS_URL": f"redis://127.0.0.1:{poll_state.port}{redis_db}",
            "CACHE_BREAKER_SECONDS": "1",
            "DATABASE_BREAKER_SECONDS": "1",
            "OIDC_RSA_PRIVATE_KEY": settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"],
            "PYTHONPATH": str(ROOT),
        }
        env.pop("CIBA_TEST_WORKER", None)  # tasks run eagerly in the web process
        log = tmp_path / "granian.log"
        out = stack.enter_context(open(log, "ab"))
        # What ./scripts/serve runs, on one worker process.
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "granian"),
                "--interface",
                "wsgi",
                "example_project.wsgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--blocking-threads",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stack.callback(_stop, process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "/o/.well-known/openid-configuration", timeout=2)
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("granian did not start:\n" + log.read_text(errors="replace"))
                time.sleep(0.1)
        yield Faults(url, database, cache, poll_state, log)


@pytest.fixture
def poller(faults: Faults, alice: Any, make_client: Any) -> dict[str, Any]:
    """A poll client with one pending request, polled once by the full path (so the poll
    state knows the request and remembers the client's verified secret)."""
    app, secret = make_client("poll")
    auth = {"Authorization": basic_auth(app.client_id, secret)}
    started, _ = faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth)
    assert started.status_code == 200, started.text
    auth_req_id = started.json()["auth_req_id"]
    first, _ = faults.post(TOKEN, poll_body(auth_req_id), **auth)
    assert first.json()["error"] == "authorization_pending", first.text
    return {"app": app, "secret": secret, "auth": auth, "auth_req_id": auth_req_id}


def poll_body(auth_req_id: str) -> str:
    return f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}"


def unavailable(response: requests.Response, seconds: float) -> None:
    """A JSON 503 the client can act on, within the bound."""
    assert seconds < BOUND, f"answered after {seconds:.2f} s"
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def pending(response: requests.Response, seconds: float) -> None:
    assert seconds < BOUND, f"answered after {seconds:.2f} s"
    assert response.json()["error"] in ("authorization_pending", "slow_down"), response.text


def recovers(
    call: Callable[[], tuple[requests.Response, float]], status: int = 200, within: float = 10
) -> None:
    deadline = time.monotonic() + within
    while True:
        response, seconds = call()
        assert seconds < BOUND
        if response.status_code == status:
            return
        assert time.monotonic() < deadline, f"not recovered: {response.status_code} {response.text}"
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["pause", "refuse"])
def test_with_postgresql_down_polls_are_answered_from_the_poll_state_and_the_rest_is_a_json_503(
    faults, poller, alice, fault
):
    consent = {"Authorization": consent_bearer(alice)["HTTP_AUTHORIZATION"]}
    auth, auth_req_id = poller["auth"], poller["auth_req_id"]
    getattr(faults.database, fault)()
    try:
        for _ in range(3):
            pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))
        unavailable(*faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth))
        unavailable(*faults.post(TOKEN, poll_body("B" * 43), **auth))  # unknown to the poll state
        unavailable(*faults.get(REQUESTS, **consent))  # the consent API, in its own error format
        for _ in range(3):  # the lane still answers while the web worker's threads fail fast
            pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))
    finally:
        faults.database.restore() if fault == "refuse" else faults.database.resume()
    recovers(lambda: faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth))
    recovers(lambda: faults.get(REQUESTS, **consent))


@pytest.mark.parametrize("fault", ["pause", "refuse"])
def test_with_the_cache_down_secret_clients_are_served_and_jti_checks_answer_503(faults, poller, fault):
    auth, auth_req_id = poller["auth"], poller["auth_req_id"]
    key = DPoPKey("EC")
    token_url = faults.url + TOKEN
    getattr(faults.cache, fault)()
    try:
        started, seconds = faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth)
        assert seconds < BOUND and started.status_code == 200, started.text  # guard, throttle fail open
        pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))
        # A DPoP proof's jti cannot be recorded: refused, never accepted unrecorded.
        unavailable(*faults.post(TOKEN, poll_body(auth_req_id), **auth, DPoP=key.proof("POST", token_url)))
    finally:
        faults.cache.restore() if fault == "refuse" else faults.cache.resume()
    recovers(
        lambda: faults.post(TOKEN, poll_body(auth_req_id), **auth, DPoP=key.proof("POST", token_url)), 400
    )


@pytest.mark.parametrize("fault", ["pause", "refuse"])
def test_with_the_poll_state_down_polls_are_answered_by_the_database(faults, poller, fault):
    auth, auth_req_id = poller["auth"], poller["auth_req_id"]
    getattr(faults.poll_state, fault)()
    try:
        for _ in range(3):
            pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))
        started, seconds = faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth)
        assert seconds < BOUND and started.status_code == 200, started.text
    finally:
        faults.poll_state.restore() if fault == "refuse" else faults.poll_state.resume()
    time.sleep(1.1)  # the poll state's breaker (1 s here)
    pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))


def test_under_load_with_postgresql_hung_every_request_answers_within_the_bound(faults, poller):
    """Polls and backchannel requests from four clients at once for about 4 s while PostgreSQL
    is black-holed: the web worker's threads are never all stuck on the database (a breaker
    lets one probe through per second, bounded by the query timeout), so polls keep their
    answers from the poll state and the rest fails fast."""
    from concurrent.futures import ThreadPoolExecutor

    auth, auth_req_id = poller["auth"], poller["auth_req_id"]
    stop = time.monotonic() + 4

    def client(n: int) -> list[tuple[str, int, float]]:
        seen = []
        while time.monotonic() < stop and len(seen) < 40:
            if n % 2:
                response, seconds = faults.post(TOKEN, poll_body(auth_req_id), **auth)
                seen.append(("poll", response.status_code, seconds))
                assert response.json()["error"] in ("authorization_pending", "slow_down")
            else:
                response, seconds = faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth)
                seen.append(("backchannel", response.status_code, seconds))
            time.sleep(0.05)
        return seen

    faults.database.pause()
    try:
        with ThreadPoolExecutor(4) as pool:
            seen = [answer for answers in pool.map(client, range(4)) for answer in answers]
    finally:
        faults.database.resume()
    slowest = max(seconds for _, _, seconds in seen)
    polls = [seconds for kind, _, seconds in seen if kind == "poll"]
    assert slowest < BOUND, faults.logs()
    assert {status for kind, status, _ in seen if kind == "backchannel"} == {503}
    assert len(polls) > 20 and sorted(polls)[len(polls) // 2] < 0.5  # the lane, not the queue
    recovers(lambda: faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth))


def test_chunked_requests_sent_straight_to_granian_are_read_whole(faults, poller):
    """Finding 10: granian hands a chunked body to the application without a length, which
    Django read as empty; the fast lane gives it its length (``ciba.fast_lane.dechunk``)."""
    import http.client

    auth, auth_req_id = poller["auth"], poller["auth_req_id"]
    port = int(urlsplit(faults.url).port or 80)

    def chunked(path: str, body: str) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            pieces = iter([body[:10].encode(), body[10:].encode()])
            connection.request("POST", path, body=pieces, headers={**FORM, **auth}, encode_chunked=True)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    status, answer = chunked(BACKCHANNEL, "scope=openid&login_hint=alice&binding_message=CHUNKED")
    assert status == 200 and answer["auth_req_id"], answer
    status, answer = chunked(TOKEN, poll_body(auth_req_id))
    assert status == 400 and answer["error"] in ("authorization_pending", "slow_down"), answer
    status, answer = chunked(TOKEN, poll_body("C" * 43))
    assert status == 400 and answer["error"] == "invalid_grant", answer  # read, then looked up


def test_with_one_redis_hung_under_both_roles_every_request_answers_within_the_bound(faults, poller):
    """The example's default: the cache and the poll state on one Redis, which hangs."""
    auth, auth_req_id = poller["auth"], poller["auth_req_id"]
    faults.cache.pause()
    faults.poll_state.pause()
    try:
        for _ in range(3):
            pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))  # from the database
        started, seconds = faults.post(BACKCHANNEL, "scope=openid&login_hint=alice", **auth)
        assert seconds < BOUND and started.status_code == 200, started.text
    finally:
        faults.cache.resume()
        faults.poll_state.resume()
    time.sleep(1.1)
    pending(*faults.post(TOKEN, poll_body(auth_req_id), **auth))
