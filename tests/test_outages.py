"""A dependency that is down or hung: bounded waits, a breaker, and JSON 503s, never an HTML 500.

The fast tier has no Redis or PostgreSQL to break, so a hung Redis is a loopback socket that
accepts and never answers, a refused one a port nobody listens on, and a failing database an
``OperationalError`` raised where a query would run. The real server with each dependency
black-holed and refused is in ``tests/integration/test_faults.py``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.db import utils as db_utils
from django.db.utils import ConnectionHandler
from django.test import Client

from ciba import outages
from ciba.jose import keys as jose_keys
from ciba.outages import BoundedRedisCache, Breaker, CacheUnavailable, is_outage
from ciba.replay import first_use
from ciba.views.backchannel_hooks import ClientRateThrottle
from example_project import env
from tests.conftest import basic_auth
from tests.protocol import BACKCHANNEL, FORM, TOKEN, consent_bearer


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP server that accepts connections and never answers: Redis stopped with SIGSTOP."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    for connection in held:
        connection.close()


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: connecting is refused


@pytest.fixture(autouse=True)
def fresh_request() -> Iterator[None]:
    outages.new_request()
    yield
    outages.end_request()


def bounded_cache(port: int, **options: Any) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "ciba.outages.BoundedRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2, **options},
        }
    }


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001
        result = exc
    return result, time.monotonic() - started


# --- the cache ------------------------------------------------------------------------------


def test_a_hung_cache_costs_one_timeout_then_nothing_for_the_rest_of_the_request(settings, hung_port):
    settings.CACHES = bounded_cache(hung_port, breaker_seconds=60)
    cache = caches["default"]
    first, waited = timed(lambda: cache.get("k"))
    assert isinstance(first, CacheUnavailable)
    assert 0.15 < waited < 0.6  # one socket timeout: redis-py's retries are off
    second, waited = timed(lambda: cache.add("k", 1))
    assert isinstance(second, CacheUnavailable) and waited < 0.05


def test_a_refused_cache_fails_at_once(settings, refused_port):
    settings.CACHES = bounded_cache(refused_port)
    result, waited = timed(lambda: caches["default"].set("k", 1))
    assert isinstance(result, CacheUnavailable) and waited < 0.2


def test_the_cache_is_tried_again_once_the_breaker_closes(settings, hung_port):
    settings.CACHES = bounded_cache(hung_port, breaker_seconds=0.3)
    cache = caches["default"]
    assert isinstance(timed(lambda: cache.get("k"))[0], CacheUnavailable)
    outages.new_request()
    assert timed(lambda: cache.get("k"))[1] < 0.05  # the process's breaker is open
    time.sleep(0.35)
    outages.new_request()
    assert timed(lambda: cache.get("k"))[1] > 0.15  # one probe waits for the cache again


def test_the_backend_takes_the_timeouts_and_retries_from_its_options():
    backend = BoundedRedisCache("redis://127.0.0.1:1/0", {"OPTIONS": {"retries": 2, "breaker_seconds": 5}})
    assert backend._options["socket_timeout"] == outages.DEFAULT_CACHE_SOCKET_TIMEOUT
    assert backend._options["retry"].get_retries() == 2
    assert backend.breaker.seconds == 5
    assert "breaker_seconds" not in backend._options and "retries" not in backend._options


# --- the breaker --------------------------------------------------------------------------------


def test_after_the_breaker_time_one_call_probes_while_the_others_still_fail_fast():
    breaker = Breaker("test dependency", seconds=0.1, probe_seconds=0.3)
    breaker.trip("down")
    assert not breaker.allow()
    outages.new_request()
    assert not breaker.allow()
    time.sleep(0.12)
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else, while the probe may still be waiting
    breaker.succeeded()
    assert breaker.allow() and not breaker.is_open


def test_outside_a_request_only_the_process_breaker_applies():
    """A Celery worker's thread serves no request: a failure must not close the dependency to
    it for good, only for the breaker's time."""
    outages.end_request()
    breaker = Breaker("worker dependency", seconds=0.05)
    breaker.trip("down")
    assert not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()


def test_one_breaker_per_dependency_and_process_shared_by_its_threads():
    assert outages.breaker("cache x", 2.0) is outages.breaker("cache x", 2.0)


# --- what an outage is --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, outage",
    [
        (db_utils.OperationalError("server closed the connection"), True),
        (db_utils.InterfaceError("connection already closed"), True),
        (CacheUnavailable("down"), True),
        (db_utils.ProgrammingError("no such column"), False),
        (db_utils.IntegrityError("duplicate key"), False),
        (ValueError("a bug"), False),
    ],
)
def test_an_outage_is_a_dependency_down_not_a_bug(exc, outage):
    assert is_outage(exc) is outage


def test_redis_errors_are_outages():
    import redis

    assert is_outage(redis.ConnectionError()) and is_outage(redis.TimeoutError())
    assert not is_outage(redis.ResponseError("WRONGTYPE"))


# --- what clients see ---------------------------------------------------------------------------


def unavailable(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == "1"


def test_the_token_endpoint_answers_a_json_503_when_the_database_is_down(
    client, alice, make_client, monkeypatch
):
    app, secret = make_client("poll")

    def down(*args: Any, **kwargs: Any) -> None:
        raise db_utils.OperationalError("connection to server failed")

    monkeypatch.setattr("ciba.oauth.validators.CibaValidator.validate_ciba_auth_req_id", down)
    response = client.post(
        TOKEN,
        f"grant_type=urn:openid:params:grant-type:ciba&auth_req_id={'A' * 43}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    unavailable(response)
    assert response["Cache-Control"] == "no-store"


def test_the_token_endpoint_answers_a_json_503_when_the_cache_is_down(
    client, alice, make_client, monkeypatch
):
    app, secret = make_client("poll")

    def down(*args: Any, **kwargs: Any) -> None:
        raise CacheUnavailable("The cache's breaker is open.")

    monkeypatch.setattr("ciba.oauth.validators.CibaValidator.validate_ciba_auth_req_id", down)
    response = client.post(
        TOKEN,
        f"grant_type=urn:openid:params:grant-type:ciba&auth_req_id={'A' * 43}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    unavailable(response)


def backchannel_while_the_database_is_down(client: Any, make_client: Any, monkeypatch: Any) -> Any:
    """A backchannel request whose INSERT meets a database that cannot be reached."""
    app, secret = make_client("poll")

    def down(**kwargs: Any) -> None:
        raise db_utils.OperationalError("could not connect to server")

    monkeypatch.setattr("ciba.views.backchannel.services.create_request", down)
    response = client.post(
        BACKCHANNEL,
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    return response


def test_the_backchannel_endpoint_answers_a_json_503_when_the_database_is_down(
    client, alice, make_client, monkeypatch
):
    unavailable(backchannel_while_the_database_is_down(client, make_client, monkeypatch))


def test_the_consent_api_answers_its_own_json_503_when_the_database_is_down(alice, monkeypatch, db):
    headers = consent_bearer(alice)

    def down(self: Any) -> None:
        raise db_utils.OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("ciba.views.consent.AuthenticationRequestViewSet.get_queryset", down)
    unavailable(Client().get("/o/ciba/requests/", **headers))


def test_a_bug_is_still_a_500_not_a_503(client, alice, make_client, monkeypatch):
    app, secret = make_client("poll")

    def bug(**kwargs: Any) -> None:
        raise db_utils.ProgrammingError("column does not exist")

    monkeypatch.setattr("ciba.views.backchannel.services.create_request", bug)
    with pytest.raises(db_utils.ProgrammingError):
        client.post(
            BACKCHANNEL,
            "scope=openid&login_hint=alice",
            content_type=FORM,
            HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        )


# --- callers of the cache -----------------------------------------------------------------------


class _Client:
    client_id = "kiosk"


class _Request:
    auth = _Client()


def test_the_backchannel_throttle_lets_requests_through_while_the_cache_is_down(settings, refused_port):
    settings.CACHES = bounded_cache(refused_port)
    settings.CIBA = {**settings.CIBA, "BACKCHANNEL_THROTTLE_RATE": "1/minute"}
    throttle = ClientRateThrottle()
    assert throttle.allow_request(_Request(), None)
    assert throttle.allow_request(_Request(), None)


def test_a_jti_is_never_accepted_unrecorded_while_the_cache_is_down(settings, refused_port, db):
    settings.CACHES = bounded_cache(refused_port)
    settings.CIBA = {**settings.CIBA, "REPLAY_STORE": "cache"}
    with pytest.raises(CacheUnavailable):
        first_use("dpop", "jkt", "jti-1", time.time() + 60)


def test_a_jti_check_refused_by_the_cache_answers_503_at_the_token_endpoint(
    client, alice, make_client, settings, refused_port
):
    from tests.dpop import DPoPKey

    app, secret = make_client("poll")
    settings.CIBA = {**settings.CIBA, "REPLAY_STORE": "cache"}
    auth_req_id = client.post(
        BACKCHANNEL,
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    ).json()["auth_req_id"]
    settings.CACHES = bounded_cache(refused_port)
    response = client.post(
        TOKEN,
        f"grant_type=urn:openid:params:grant-type:ciba&auth_req_id={auth_req_id}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        HTTP_DPOP=DPoPKey("EC").proof("POST", "http://testserver/o/token/"),
    )
    unavailable(response)


def test_a_fetched_key_set_is_kept_in_the_process_while_the_cache_is_down(
    settings, refused_port, monkeypatch
):
    settings.CACHES = bounded_cache(refused_port)
    fetched: list[str] = []

    def get_json(url: str, **kwargs: Any) -> dict[str, Any]:
        fetched.append(url)
        return {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "use": "sig"}]}

    monkeypatch.setattr(jose_keys, "get_json", get_json)
    monkeypatch.setattr(jose_keys, "_local", {})

    class Registered:
        pk = 7
        jwks: dict[str, Any] = {}
        jwks_uri = "https://client.example.com/jwks"
        client_id = "kiosk"

    for _ in range(3):
        outages.new_request()
        assert jose_keys.client_keys(Registered())
    assert fetched == ["https://client.example.com/jwks"]


def test_a_signing_key_version_stamp_the_cache_cannot_read_means_the_database(settings, refused_port):
    from ciba import signing

    settings.CACHES = bounded_cache(refused_port)
    assert signing._shared_version() is None


# --- the example's settings -------------------------------------------------------------------


def test_the_example_bounds_every_postgresql_wait(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://ciba@db.example:5432/ciba")
    config = env.database("/tmp/unused.sqlite3")
    assert config["ENGINE"] == "ciba.db"
    options = config["OPTIONS"]
    assert options["connect_timeout"] == 2 and options["query_timeout"] == 2
    assert "-c statement_timeout=1500" in options["options"]
    assert options["keepalives"] == 1 and options["tcp_user_timeout"] == 5000


def test_each_postgresql_bound_has_its_variable_and_zero_turns_it_off(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://ciba@db.example:5432/ciba")
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT", "0")
    monkeypatch.setenv("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", "0")
    monkeypatch.setenv("DATABASE_LOCK_TIMEOUT", "500")
    monkeypatch.setenv("DATABASE_QUERY_TIMEOUT", "0.75")
    options = env.database("/tmp/unused.sqlite3")["OPTIONS"]
    assert options["options"] == "-c lock_timeout=500"
    assert options["query_timeout"] == 0.75


def test_a_bound_that_cannot_be_right_stops_the_start(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("DATABASE_URL", "postgres://ciba@db.example:5432/ciba")
    monkeypatch.setenv("DATABASE_QUERY_TIMEOUT", "soon")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_QUERY_TIMEOUT"):
        env.database("/tmp/unused.sqlite3")


def test_sqlite_is_left_as_it_is(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert env.database("/tmp/unused.sqlite3")["ENGINE"] == "django.db.backends.sqlite3"


def test_the_example_cache_on_redis_is_bounded(monkeypatch):
    monkeypatch.setenv("CACHE_URL", "redis://cache.example:6379/1")
    monkeypatch.setenv("CACHE_SOCKET_TIMEOUT", "0.25")
    config = env.cache()
    assert config["BACKEND"] == "ciba.outages.BoundedRedisCache"
    assert config["OPTIONS"] == {
        "socket_connect_timeout": 0.5,
        "socket_timeout": 0.25,
        "retries": 0,
        "breaker_seconds": 2,
    }


def test_the_engine_hands_psycopg_only_libpq_parameters(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://ciba@db.example:5432/ciba")
    wrapper = ConnectionHandler({"default": env.database("/tmp/unused.sqlite3")})["default"]
    params = wrapper.get_connection_params()
    assert "query_timeout" not in params and "breaker_seconds" not in params
    assert params["connect_timeout"] == 2
    assert wrapper.query_timeout == 2.0
    assert wrapper.breaker.probe_seconds == 2.0


# --- system checks ------------------------------------------------------------------------------


def _ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_bound_that_is_not_a_number_is_an_error(settings):
    from ciba.checks import check_outage_options

    settings.CACHES = bounded_cache(1, socket_timeout="soon")
    assert _ids(check_outage_options()) == ["ciba.E038"]
    settings.CACHES = bounded_cache(1)
    settings.DATABASES = {
        **settings.DATABASES,
        "other": {"ENGINE": "ciba.db", "NAME": "x", "OPTIONS": {"breaker_seconds": -1}},
    }
    assert _ids(check_outage_options()) == ["ciba.E038"]
    settings.DATABASES["other"]["OPTIONS"] = {"health_check_idle_seconds": "1s"}
    assert _ids(check_outage_options()) == ["ciba.E038"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_check_deploy_warns_about_an_unbounded_redis_cache_or_postgresql(settings):
    from ciba.checks import check_bounded_dependencies

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}
    }
    settings.DATABASES = {
        **settings.DATABASES,
        "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
    }
    assert _ids(check_bounded_dependencies()) == ["ciba.W014", "ciba.W015"]
    settings.CACHES = bounded_cache(1)
    settings.DATABASES = {**settings.DATABASES, "pg": {"ENGINE": "ciba.db", "NAME": "x"}}
    assert _ids(check_bounded_dependencies()) == []


def test_the_retry_after_of_an_outage_is_a_setting(client, alice, make_client, monkeypatch, settings):
    settings.CIBA = {**settings.CIBA, "OUTAGE_RETRY_AFTER": 5}
    response = backchannel_while_the_database_is_down(client, make_client, monkeypatch)
    assert response.status_code == 503 and response["Retry-After"] == "5"


def test_a_sites_handler500_turns_an_outage_elsewhere_into_a_json_503(rf):
    from ciba.views.rendering import server_error

    try:
        raise CacheUnavailable("The cache's breaker is open.")
    except CacheUnavailable:
        response = server_error(rf.get("/o/userinfo/"))
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response["Content-Type"] == "application/json"
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(rf.get("/")).status_code == 500


def test_a_password_in_the_cache_url_stays_out_of_the_logs():
    backend = BoundedRedisCache("redis://:hunter2@cache.example:6380/2", {})
    assert backend.breaker.name == "cache redis://cache.example:6380/2"
