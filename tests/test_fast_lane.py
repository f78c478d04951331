"""The pending-poll fast lane (``ciba.fast_lane``): Django's bytes, or Django itself.

The fast tier has no Redis, so the shared poll state here is ``ProvenPending``: it answers a
poll only for credentials the full path verified (as ``RedisPollState`` does) and only what the
test says the request is. Redis itself is in ``tests/integration/test_fast_lane.py``.

Requests are WSGI environs handed to the wrapped ``WSGIHandler`` in-process, so every answer
is compared with what Django alone gives, byte for byte, headers in order included.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from ciba import polling
from ciba.client_auth import Credentials
from ciba.constants import AUTH_CLIENT_SECRET_BASIC, CIBA_GRANT_TYPE
from ciba.fast_lane import FastLane
from ciba.models import AuthenticationRequest
from ciba.polling import DatabasePollState
from tests.conftest import basic_auth, start_request
from tests.keys import assertion_claims, rsa_key, sign

FORM = "application/x-www-form-urlencoded"
TOKEN = "/o/token/"
#: What ``django-admin startproject`` writes, as the example project has it.
STARTPROJECT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


# --- calling WSGI applications in-process ---------------------------------------------------


@dataclass
class Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def error(self) -> str:
        return json.loads(self.body).get("error", "")


def environ(
    body: bytes | str = b"",
    *,
    path: str = TOKEN,
    method: str = "POST",
    content_type: str = FORM,
    **extra: str,
) -> dict[str, Any]:
    """A WSGI environ as a server builds it; ``extra`` adds CGI keys (``HTTP_AUTHORIZATION``)."""
    data = body.encode() if isinstance(body, str) else body
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if method == "POST":
        env["CONTENT_TYPE"] = content_type
        env["CONTENT_LENGTH"] = str(len(data))
    env.update(extra)
    return env


def call(app: Callable[..., Iterable[bytes]], env: dict[str, Any]) -> Answer:
    """Run one request through ``app`` as a server would, inside the test's transaction (like
    Django's test client, without closing the connection at the request's start and end)."""
    started: list[Any] = []
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        chunks = app(env, lambda status, headers, exc_info=None: started.append((status, headers)))
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    status, headers = started[0]
    return Answer(status, list(headers), body)


class Spy:
    """The wrapped application, counting what reached it and what body it was handed."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.calls = 0

    def __call__(self, env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        return self.app(env, start_response)


def echo(env: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A stand-in for Django that answers with the body it could read, as Django reads it."""
    length = env.get("CONTENT_LENGTH", "")
    body = env["wsgi.input"].read(int(length)) if length.isdigit() else env["wsgi.input"].read()
    start_response("200 OK", [("X-Content-Length", env.get("CONTENT_LENGTH", "-"))])
    return [body]


# --- a shared poll state without Redis --------------------------------------------------------


class ProvenPending(DatabasePollState):
    """A shared store that knows what ``ANSWERS`` says, for credentials the full path verified
    (``record_poll`` remembers their fingerprint, as ``RedisPollState`` does)."""

    shared = True
    ANSWERS: dict[str, str] = {}
    VERIFIED: set[tuple[str, str]] = set()
    #: Requests made with a DPoP key: never answered here (RedisPollState's record flag).
    WITH_KEY: set[str] = set()
    polls = 0

    def track(self, ar: Any) -> None:
        if polling.made_with_dpop_key(ar):
            self.WITH_KEY.add(ar.auth_req_id)

    def record_poll(self, ar: Any, fingerprint: str | None, now: Any) -> str:
        if fingerprint and polling.needs_no_proof(ar.client):
            self.VERIFIED.add((ar.client.client_id, fingerprint))
        if polling.made_with_dpop_key(ar):
            self.WITH_KEY.add(ar.auth_req_id)
        return super().record_poll(ar, fingerprint, now)

    def poll(self, client_id: str, fingerprint: str, auth_req_id: str, now: float) -> str | None:
        type(self).polls += 1
        if (client_id, fingerprint) not in self.VERIFIED or auth_req_id in self.WITH_KEY:
            return None
        return self.ANSWERS.get(auth_req_id)


@pytest.fixture
def proven(settings: Any) -> type[ProvenPending]:
    ProvenPending.ANSWERS, ProvenPending.VERIFIED, ProvenPending.polls = {}, set(), 0
    ProvenPending.WITH_KEY = set()
    settings.CIBA = {**settings.CIBA, "POLL_STATE_CLASS": "tests.test_fast_lane.ProvenPending"}
    settings.MIDDLEWARE = STARTPROJECT_MIDDLEWARE
    assert isinstance(polling.poll_state(), ProvenPending)
    return ProvenPending


@dataclass
class Site:
    django: WSGIHandler
    spy: Spy
    lane: FastLane


@pytest.fixture
def site(proven: Any) -> Site:
    django = WSGIHandler()  # after the settings: middleware are loaded here
    spy = Spy(django)
    return Site(django, spy, FastLane(spy))


@pytest.fixture
def pending(client: Any, alice: Any, make_client: Any, proven: Any) -> tuple[Any, str, str]:
    """A poll client whose secret the full path verified, and one pending request of it."""
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    first = client.post(
        TOKEN, grant(auth_req_id), content_type=FORM, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    )
    assert first.json()["error"] == "authorization_pending"
    assert proven.VERIFIED, "the full path remembers the verified credentials"
    proven.ANSWERS[auth_req_id] = polling.PENDING
    return app, secret, auth_req_id


def grant(auth_req_id: str, extra: str = "") -> str:
    return f"grant_type={CIBA_GRANT_TYPE}&auth_req_id={auth_req_id}{extra}"


# --- what the lane answers ------------------------------------------------------------------


@pytest.mark.parametrize("code", [polling.PENDING, polling.SLOW_DOWN])
def test_the_lane_answers_with_the_bytes_django_gives(site, pending, proven, code, django_assert_num_queries):
    app, secret, auth_req_id = pending
    proven.ANSWERS[auth_req_id] = code
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}

    with django_assert_num_queries(0):
        fast = call(site.lane, environ(grant(auth_req_id), **request))
    assert site.spy.calls == 0, "answered by the lane, not by Django"
    full = call(site.django, environ(grant(auth_req_id), **request))

    assert fast == full  # status line, every header in order, body
    assert fast.error == code
    assert ("Cache-Control", "no-store") in fast.headers and ("Pragma", "no-cache") in fast.headers
    assert ("X-Frame-Options", "DENY") in fast.headers  # the middleware's headers too


def test_client_secret_post_is_answered_by_the_lane_too(site, client, alice, make_client, proven):
    app, secret = make_client("poll", token_endpoint_auth_method="client_secret_post")
    credentials = f"&client_id={app.client_id}&client_secret={secret}"
    body = f"scope=openid&login_hint=alice{credentials}"
    auth_req_id = client.post("/o/backchannel-authentication/", body, content_type=FORM).json()["auth_req_id"]
    assert call(site.django, environ(grant(auth_req_id, credentials))).error == "authorization_pending"
    proven.ANSWERS[auth_req_id] = polling.SLOW_DOWN
    calls = site.spy.calls

    fast = call(site.lane, environ(grant(auth_req_id, credentials)))

    assert site.spy.calls == calls
    assert fast == call(site.django, environ(grant(auth_req_id, credentials)))
    assert fast.error == "slow_down"


def test_the_lane_logs_each_answer_as_django_does(site, pending, caplog):
    app, secret, auth_req_id = pending
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    records = []
    for answer in (site.lane, site.django):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="django.request"):
            call(answer, environ(grant(auth_req_id), **request))
        records.append([(r.name, r.levelname, r.getMessage(), r.status_code) for r in caplog.records])
    assert site.spy.calls == 0
    assert records[0] == records[1] == [("django.request", "WARNING", "Bad Request: /o/token/", 400)]


@pytest.mark.parametrize("code", [polling.PENDING, polling.SLOW_DOWN])
def test_answers_given_again_stay_djangos_bytes_over_http_and_https_in_turn(settings, pending, proven, code):
    app, secret, auth_req_id = pending
    proven.ANSWERS[auth_req_id] = code
    settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = 3600, True
    settings.MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", *STARTPROJECT_MIDDLEWARE]
    django = WSGIHandler()
    spy = Spy(django)
    lane = FastLane(spy)
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret), "HTTP_ACCEPT_ENCODING": "gzip"}

    for scheme in ("http", "https", "http", "https", "https", "http"):
        fast = call(lane, environ(grant(auth_req_id), **request, **{"wsgi.url_scheme": scheme}))
        assert fast == call(django, environ(grant(auth_req_id), **request, **{"wsgi.url_scheme": scheme}))
        hsts = [value for name, value in fast.headers if name == "Strict-Transport-Security"]
        assert hsts == (["max-age=3600; includeSubDomains"] if scheme == "https" else [])
        assert fast.error == code
    assert spy.calls == 0


def test_a_changed_setting_changes_the_next_answer_as_it_changes_djangos(settings, site, pending):
    app, secret, auth_req_id = pending
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    assert ("X-Frame-Options", "DENY") in call(site.lane, environ(grant(auth_req_id), **request)).headers

    settings.X_FRAME_OPTIONS = "SAMEORIGIN"
    fast = call(site.lane, environ(grant(auth_req_id), **request))

    assert ("X-Frame-Options", "SAMEORIGIN") in fast.headers
    assert fast == call(site.django, environ(grant(auth_req_id), **request))
    assert site.spy.calls == 0


def test_every_answer_is_logged_also_when_the_lane_gives_it_again(site, pending, caplog):
    app, secret, auth_req_id = pending
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    with caplog.at_level(logging.WARNING, logger="django.request"):
        for _ in range(3):
            call(site.lane, environ(grant(auth_req_id), **request))
    assert site.spy.calls == 0
    assert [(r.name, r.levelname, r.getMessage(), r.status_code) for r in caplog.records] == [
        ("django.request", "WARNING", "Bad Request: /o/token/", 400)
    ] * 3


def test_the_lane_is_off_with_a_middleware_it_does_not_know_until_the_site_vouches_for_it(
    settings, proven, pending, caplog
):
    app, secret, auth_req_id = pending
    settings.MIDDLEWARE = [*STARTPROJECT_MIDDLEWARE, "tests.test_fast_lane.SiteMiddleware"]
    with caplog.at_level(logging.WARNING, logger="ciba.fast_lane"):
        spy = Spy(WSGIHandler())
        lane = FastLane(spy)
    assert "tests.test_fast_lane.SiteMiddleware" in caplog.text
    answer = call(lane, environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)))
    assert spy.calls == 1 and ("X-Site", "1") in answer.headers

    settings.CIBA = {
        **settings.CIBA,
        "FAST_LANE_SKIPPABLE_MIDDLEWARE": ["tests.test_fast_lane.SiteMiddleware"],
    }
    lane = FastLane(spy)
    call(lane, environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)))
    assert spy.calls == 1


class SiteMiddleware:
    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        response["X-Site"] = "1"
        return response


# --- what the lane leaves to Django ---------------------------------------------------------


def _jwt_client_body(client_id: str, auth_req_id: str) -> str:
    assertion = sign(assertion_claims(client_id, "http://testserver/o/token/"), rsa_key(), "PS256")
    return grant(
        auth_req_id,
        "&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        f"&client_assertion={assertion}",
    )


LEFT_TO_DJANGO: dict[str, Callable[[Any, str, str], dict[str, Any]]] = {
    "a wrong secret": lambda app, secret, id_: environ(
        grant(id_), HTTP_AUTHORIZATION=basic_auth(app.client_id, "x" + secret)
    ),
    "another client's id": lambda app, secret, id_: environ(
        grant(id_), HTTP_AUTHORIZATION=basic_auth("someone", secret)
    ),
    "private_key_jwt": lambda app, secret, id_: environ(_jwt_client_body(app.client_id, id_)),
    "mTLS (client_id only)": lambda app, secret, id_: environ(grant(id_, f"&client_id={app.client_id}")),
    "no credentials": lambda app, secret, id_: environ(grant(id_)),
    "a repeated parameter": lambda app, secret, id_: environ(
        grant(id_, f"&auth_req_id={id_}"), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
    "a malformed auth_req_id": lambda app, secret, id_: environ(
        grant(id_ + "!"), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
    "another grant": lambda app, secret, id_: environ(
        f"grant_type=client_credentials&auth_req_id={id_}",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    ),
    "a JSON body": lambda app, secret, id_: environ(
        f'{{"grant_type": "{CIBA_GRANT_TYPE}", "auth_req_id": "{id_}"}}',
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    ),
    "a form in another charset": lambda app, secret, id_: environ(
        grant(id_),
        content_type=FORM + "; charset=latin-1",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    ),
    "a body that is not a form": lambda app, secret, id_: environ(
        b"\xff\xfe%%%" + id_.encode(), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
    "a cookie": lambda app, secret, id_: environ(
        grant(id_), HTTP_COOKIE="sessionid=x", HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
    "a DPoP proof": lambda app, secret, id_: environ(
        grant(id_), HTTP_DPOP="e30.e30.", HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
    "a query string": lambda app, secret, id_: environ(
        grant(id_), QUERY_STRING="x=1", HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
    "a host Django refuses": lambda app, secret, id_: environ(
        grant(id_), HTTP_HOST="evil.example", HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)
    ),
}


@pytest.mark.parametrize("case", LEFT_TO_DJANGO)
def test_everything_the_lane_cannot_prove_gets_djangos_own_answer(site, pending, case):
    app, secret, auth_req_id = pending
    make = LEFT_TO_DJANGO[case]

    through_lane = call(site.lane, make(app, secret, auth_req_id))
    assert site.spy.calls == 1, "handed to Django"
    alone = call(site.django, make(app, secret, auth_req_id))

    assert through_lane == alone


def test_a_repeated_parameter_keeps_its_precise_error(site, pending):
    app, secret, auth_req_id = pending
    answer = call(
        site.lane,
        environ(
            grant(auth_req_id, f"&auth_req_id={auth_req_id}"),
            HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        ),
    )
    assert site.spy.calls == 1
    assert answer.error == "invalid_request" and b"Duplicate auth_req_id parameter." in answer.body


def test_an_unverified_secret_always_goes_to_django(site, client, alice, make_client, proven):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)
    proven.ANSWERS[auth_req_id] = polling.PENDING  # the record says pending, the secret is unproven

    answer = call(
        site.lane, environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    )

    assert site.spy.calls == 1 and answer.error == "authorization_pending"
    assert proven.VERIFIED  # Django verified it; the next poll may take the lane


def test_the_database_poll_state_sends_every_poll_to_django(site, pending, settings):
    app, secret, auth_req_id = pending
    settings.CIBA = {**settings.CIBA, "POLL_STATE_CLASS": "ciba.polling.DatabasePollState"}
    answer = call(
        site.lane, environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    )
    assert site.spy.calls == 1 and answer.error == "slow_down"  # counted by the database


BODY = grant("A" * 43).encode()


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(environ(BODY, method="GET"), id="GET"),
        pytest.param(environ(BODY, path="/o/backchannel-authentication/"), id="another path"),
        pytest.param(environ(BODY, path="/o/token"), id="the path without its slash"),
        pytest.param(environ(BODY, method="PUT"), id="PUT"),
        pytest.param(environ(BODY + b"&pad=" + b"x" * 5000), id="an oversized body"),
        pytest.param({**environ(BODY), "CONTENT_LENGTH": "abc"}, id="a malformed Content-Length"),
        pytest.param(environ(b""), id="an empty body"),
    ],
)
def test_other_requests_reach_the_application_untouched(proven, env):
    spy = Spy(echo)
    original = env["wsgi.input"].getvalue()
    length = env.get("CONTENT_LENGTH")

    answer = call(FastLane(spy), env)

    assert spy.calls == 1
    assert answer.body == (original[: int(length)] if (length or "").isdigit() else original)
    assert ("X-Content-Length", length if length is not None else "-") in answer.headers
    assert proven.polls == 0


def test_a_body_the_lane_read_is_handed_on_whole_with_its_length(pending, proven):
    app, secret, auth_req_id = pending
    body = grant(auth_req_id, f"&client_id={app.client_id}")  # mTLS-style: the lane reads, then passes
    spy = Spy(echo)
    answer = call(FastLane(spy), environ(body))
    assert spy.calls == 1
    assert answer.body == body.encode()
    assert ("X-Content-Length", str(len(body))) in answer.headers


def test_a_short_read_still_hands_on_every_byte(proven):
    class Dribble(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(min(size, 7) if size and size > 0 else size)

    body = grant("B" * 43).encode()
    env = environ(body, HTTP_AUTHORIZATION=basic_auth("someone", "secret"))
    env["wsgi.input"] = Dribble(body)
    assert call(FastLane(Spy(echo)), env).body == body


def test_the_fingerprint_is_the_one_the_full_path_remembers(pending, proven):
    app, secret, _ = pending
    expected = Credentials(AUTH_CLIENT_SECRET_BASIC, app.client_id, secret=secret).fingerprint()
    assert proven.VERIFIED == {(app.client_id, expected)}


# --- a chunked body (Transfer-Encoding: chunked, no Content-Length) -----------------------------


def chunked(env: dict[str, Any]) -> dict[str, Any]:
    """``env`` as granian hands a chunked request over: the chunks decoded into ``wsgi.input``,
    ``Transfer-Encoding`` kept, no ``CONTENT_LENGTH``."""
    env = {key: value for key, value in env.items() if key != "CONTENT_LENGTH"}
    env["HTTP_TRANSFER_ENCODING"] = "chunked"
    return env


def test_a_chunked_body_reaches_the_application_with_its_length(proven):
    spy = Spy(echo)
    answer = call(FastLane(spy), chunked(environ(BODY)))
    assert spy.calls == 1
    assert answer.body == BODY
    assert ("X-Content-Length", str(len(BODY))) in answer.headers


def test_a_chunked_poll_gets_the_answer_a_poll_with_a_length_gets(site, pending):
    app, secret, auth_req_id = pending
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    with_length = call(site.lane, environ(grant(auth_req_id), **request))
    assert call(site.lane, chunked(environ(grant(auth_req_id), **request))) == with_length
    assert with_length.error == "authorization_pending"


def test_a_chunked_token_request_is_read_by_django(site, client, alice, make_client, proven):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret)  # never verified: Django answers
    answer = call(
        site.lane, chunked(environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret)))
    )
    assert site.spy.calls == 1
    assert answer.error == "authorization_pending"  # read as empty, it would be invalid_request


def test_a_chunked_backchannel_request_is_read_by_django(site, alice, make_client):
    app, secret = make_client("poll")
    body = "scope=openid&login_hint=alice"
    answer = call(
        site.lane,
        chunked(
            environ(
                body,
                path="/o/backchannel-authentication/",
                HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
            )
        ),
    )
    assert answer.status == "200 OK", answer.body
    assert json.loads(answer.body)["auth_req_id"]


def test_a_chunked_body_too_large_to_read_is_refused_as_one_with_a_length(site, settings, pending):
    app, secret, auth_req_id = pending
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = grant(auth_req_id, "&pad=" + "x" * 2000)
    answer = call(site.lane, chunked(environ(body, HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))))
    assert answer.status.startswith("400") and answer.error == "invalid_request"
    assert b"too large" in answer.body


def test_a_content_length_of_thousands_of_digits_is_left_to_django(proven):
    def unread(env: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    spy = Spy(unread)
    env = environ(BODY)
    env["CONTENT_LENGTH"] = "9" * 5000  # past int()'s digit limit (Django reads it as 0)
    assert call(FastLane(spy), env).status == "200 OK"
    assert spy.calls == 1


# --- no pending answer before the DPoP checks of the full path (RFC 9449) ---------------------

TOKEN_URL = "http://testserver/o/token/"


def poll_with(client: Any, app: Any, secret: str, auth_req_id: str, **headers: Any) -> Any:
    return client.post(
        TOKEN,
        grant(auth_req_id),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        **headers,
    )


@pytest.fixture
def dpop_bound(client: Any, alice: Any, make_client: Any, proven: Any) -> tuple[Any, str, str, Any]:
    """A client whose tokens are DPoP-bound, a pending request of it polled once with a good
    proof (the full path verified its secret), and its key."""
    from tests.dpop import DPoPKey

    app, secret = make_client("poll", dpop_bound_access_tokens=True)
    key = DPoPKey("EC")
    auth_req_id = start_request(client, app, secret)
    first = poll_with(client, app, secret, auth_req_id, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert first.json()["error"] == "authorization_pending"
    proven.ANSWERS[auth_req_id] = polling.PENDING  # the store would say pending if asked
    return app, secret, auth_req_id, key


def test_a_dpop_bound_clients_poll_without_a_proof_is_refused_not_pending(client, site, dpop_bound):
    app, secret, auth_req_id, _ = dpop_bound
    assert poll_with(client, app, secret, auth_req_id).json()["error"] == "invalid_dpop_proof"
    through_lane = call(
        site.lane, environ(grant(auth_req_id), HTTP_AUTHORIZATION=basic_auth(app.client_id, secret))
    )
    assert through_lane.error == "invalid_dpop_proof"


def test_an_unsigned_or_replayed_dpop_proof_is_refused_while_the_request_is_pending(client, dpop_bound):
    from tests.dpop import unsigned_proof

    app, secret, auth_req_id, key = dpop_bound
    none = unsigned_proof(key, "POST", TOKEN_URL)
    assert poll_with(client, app, secret, auth_req_id, HTTP_DPOP=none).json()["error"] == "invalid_dpop_proof"
    proof = key.proof("POST", TOKEN_URL)
    assert poll_with(client, app, secret, auth_req_id, HTTP_DPOP=proof).json()["error"] == "slow_down"
    replayed = poll_with(client, app, secret, auth_req_id, HTTP_DPOP=proof)
    assert replayed.json()["error"] == "invalid_dpop_proof"


def test_a_required_nonce_is_demanded_before_a_pending_answer(client, settings, dpop_bound):
    settings.CIBA = {**settings.CIBA, "DPOP_NONCE_REQUIRED": True}
    app, secret, auth_req_id, key = dpop_bound
    answer = poll_with(client, app, secret, auth_req_id, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert answer.json()["error"] == "use_dpop_nonce" and answer["DPoP-Nonce"]


def test_a_request_made_with_a_dpop_key_is_pending_only_to_a_proof_of_that_key(
    client, site, alice, make_client, proven
):
    from tests.dpop import DPoPKey

    app, secret = make_client("poll")
    plain = start_request(client, app, secret)
    assert poll_with(client, app, secret, plain).json()["error"] == "authorization_pending"  # verified
    key = DPoPKey("EC")
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        HTTP_DPOP=key.proof("POST", "http://testserver/o/backchannel-authentication/"),
    )
    keyed = response.json()["auth_req_id"]
    polling.poll_state().track(AuthenticationRequest.objects.get(auth_req_id=keyed))  # the record
    proven.ANSWERS[plain] = proven.ANSWERS[keyed] = polling.PENDING
    assert poll_with(client, app, secret, keyed).json()["error"] == "invalid_dpop_proof"
    request = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    assert call(site.lane, environ(grant(keyed), **request)).error == "invalid_dpop_proof"
    other = DPoPKey("EC").proof("POST", TOKEN_URL)
    assert poll_with(client, app, secret, keyed, HTTP_DPOP=other).json()["error"] == "invalid_dpop_proof"
    right = poll_with(client, app, secret, keyed, HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert right.json()["error"] == "authorization_pending"
    assert (
        call(site.lane, environ(grant(plain), **request)).error == "authorization_pending"
    )  # still the lane's


def test_a_malformed_dpop_proof_of_a_plain_client_is_refused_not_pending(client, pending):
    app, secret, auth_req_id = pending
    answer = poll_with(client, app, secret, auth_req_id, HTTP_DPOP="e30.e30.")
    assert answer.json()["error"] == "invalid_dpop_proof"


def test_a_site_without_the_lane_can_still_read_chunked_bodies():
    from ciba.fast_lane import ChunkedBodies

    answer = call(ChunkedBodies(echo), chunked(environ(BODY)))
    assert answer.body == BODY and ("X-Content-Length", str(len(BODY))) in answer.headers
