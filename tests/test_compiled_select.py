"""A statement compiled once (``ciba.statements.select``) answers what the ORM would, with the
ORM's own SQL, and leaves to the ORM whatever it cannot prove it sends unchanged."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from ciba.models import AuthenticationRequest, ConsentClient
from ciba.oauth.validators import _ACCESS_TOKEN, CibaValidator
from ciba.statements.select import CompiledSelect, along

from .conftest import start_request

AccessToken = get_access_token_model()
pytestmark = pytest.mark.django_db


def device_token(user: Any, app: Any, value: str | None = None) -> Any:
    value = value or uuid.uuid4().hex
    return AccessToken.objects.create(
        user=user,
        application=app,
        token=value,
        scope="openid ciba:consent",
        expires=timezone.now() + timedelta(hours=1),
    )


def checksum(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def orm_token(value: str) -> Any:
    return (
        AccessToken.objects.select_related("application__ciba_consent_client", "user", "ciba_binding")
        .filter(token_checksum=checksum(value))
        .first()
    )


def test_the_bearer_token_is_loaded_with_the_orms_own_statement(alice, make_client):
    app, _ = make_client("poll")
    ConsentClient.objects.create(application=app)
    token = device_token(alice, app)
    with CaptureQueriesContext(connection) as orm:
        orm_token(token.token)
    for _ in range(2):  # the first call compiles, the second reuses
        with CaptureQueriesContext(connection) as ours:
            loaded = CibaValidator()._load_access_token(token.token)
        assert [q["sql"] for q in ours.captured_queries] == [q["sql"] for q in orm.captured_queries]
    assert _ACCESS_TOKEN._prepared, "the token lookup was compiled, not left to the ORM"
    assert all(prepared is not None for prepared in _ACCESS_TOKEN._prepared.values())
    expected = orm_token(token.token)
    assert loaded == expected
    assert {f.attname: getattr(loaded, f.attname) for f in AccessToken._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in AccessToken._meta.concrete_fields
    }


def test_the_loaded_token_carries_its_user_application_and_designation_without_more_queries(
    alice, make_client
):
    app, _ = make_client("poll")
    ConsentClient.objects.create(application=app)
    token = device_token(alice, app)
    loaded = CibaValidator()._load_access_token(token.token)
    with CaptureQueriesContext(connection) as queries:
        assert loaded.user.username == "alice"
        assert loaded.application.name == app.name
        assert loaded.application.ciba_consent_client.application_id == app.pk
        assert loaded.expires == token.expires  # a datetime again, converters applied
    assert queries.captured_queries == []


def test_an_unknown_token_is_none_and_each_call_uses_its_own_value(alice, make_client):
    app, _ = make_client("poll")
    first, second = device_token(alice, app), device_token(alice, app)
    validator = CibaValidator()
    assert validator._load_access_token("no-such-token") is None
    assert validator._load_access_token(first.token).pk == first.pk
    assert validator._load_access_token(second.token).pk == second.pk


def test_a_revoked_token_is_not_found_again(alice, make_client):
    app, _ = make_client("poll")
    token = device_token(alice, app)
    validator = CibaValidator()
    assert validator._load_access_token(token.token) is not None
    token.delete()
    assert validator._load_access_token(token.token) is None


def test_json_and_datetime_columns_come_back_as_python_values(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret, "scope=openid&login_hint=alice&binding_message=W4")
    statement = CompiledSelect(
        AuthenticationRequest, lambda requests, rid: requests.select_related("client").filter(auth_req_id=rid)
    )
    [ours] = statement.fetch(auth_req_id)
    theirs = AuthenticationRequest.objects.select_related("client").get(auth_req_id=auth_req_id)
    for field in AuthenticationRequest._meta.concrete_fields:
        assert getattr(ours, field.attname) == getattr(theirs, field.attname), field.name
    assert ours.client.client_id == app.client_id
    assert statement.fetch("unknown") == []


def test_an_integer_value_is_sent_as_given(client, alice, make_client):
    app, secret = make_client("poll")
    auth_req_id = start_request(client, app, secret, "scope=openid&login_hint=alice&binding_message=W4")
    statement = CompiledSelect(
        AuthenticationRequest, lambda requests, user_id: requests.filter(user_id=user_id)
    )
    assert [ar.auth_req_id for ar in statement.fetch(alice.pk)] == [auth_req_id]
    assert statement.fetch(alice.pk + 1000) == []
    assert all(prepared is not None for prepared in statement._prepared.values())


def test_a_value_the_lookup_prepares_is_left_to_the_orm(alice, make_client):
    """``iexact`` escapes and wraps its value on SQLite (and ``contains`` on every backend): the
    compiled parameters do not hold the value as given, so the ORM builds it every time."""
    app, _ = make_client("poll")
    token = device_token(alice, app, value="Mixed-Case-Token")
    statement = CompiledSelect(AccessToken, lambda tokens, fragment: tokens.filter(token__contains=fragment))
    assert [t.pk for t in statement.fetch("Case")] == [token.pk]
    assert list(statement._prepared.values()) == [None]
    assert statement.fetch("absent") == []


def test_a_value_also_sent_changed_elsewhere_in_the_statement_is_never_frozen(alice, make_client):
    """One value used twice, once as given and once wrapped by ``contains``: the wrapped copy
    would hold the first call's value for ever, so the ORM builds this statement every time."""
    app, _ = make_client("poll")
    exact = device_token(alice, app, value="ab")
    containing = device_token(alice, app, value="xxabxx")
    other = device_token(alice, app, value="cd")
    statement = CompiledSelect(
        AccessToken,
        lambda tokens, value: tokens.filter(models.Q(token=value) | models.Q(token__contains=value)).order_by(
            "pk"
        ),
    )
    assert [t.pk for t in statement.fetch("ab")] == [exact.pk, containing.pk]
    assert [t.pk for t in statement.fetch("cd")] == [other.pk]
    assert list(statement._prepared.values()) == [None]


def test_a_time_is_compared_as_given_on_every_call(alice, make_client):
    app, _ = make_client("poll")
    soon = device_token(alice, app)
    later = device_token(alice, app)
    now = timezone.now()
    AccessToken.objects.filter(pk=soon.pk).update(expires=now + timedelta(minutes=1))
    AccessToken.objects.filter(pk=later.pk).update(expires=now + timedelta(minutes=10))
    statement = CompiledSelect(
        AccessToken, lambda tokens, when: tokens.filter(expires__gt=when).order_by("pk")
    )
    assert [t.pk for t in statement.fetch(now)] == [soon.pk, later.pk]
    assert [t.pk for t in statement.fetch(now + timedelta(minutes=5))] == [later.pk]
    assert statement.fetch(now + timedelta(hours=1)) == []
    if connection.vendor == "postgresql":  # SQLite turns a datetime into text: the ORM builds it
        assert all(prepared is not None for prepared in statement._prepared.values())


def test_a_value_of_another_type_is_left_to_the_orm(alice, make_client):
    app, _ = make_client("poll")
    token = device_token(alice, app)
    statement = CompiledSelect(AccessToken, lambda tokens, pk: tokens.filter(pk=pk))
    assert [t.pk for t in statement.fetch(str(token.pk))] == [token.pk]  # a str for an integer column
    assert [t.pk for t in statement.fetch(token.pk)] == [token.pk]


def test_a_manager_of_the_sites_own_is_asked_every_time(alice, make_client, monkeypatch):
    """A site's manager may add conditions that change per request: never frozen."""
    app, _ = make_client("poll")
    token = device_token(alice, app)

    class OnlyUnexpired(models.Manager):
        def get_queryset(self) -> Any:
            return super().get_queryset().filter(expires__gt=timezone.now())

    manager = OnlyUnexpired()
    manager.model = AccessToken
    monkeypatch.setattr(AccessToken._meta, "default_manager", manager)
    statement = CompiledSelect(AccessToken, lambda tokens, value: tokens.filter(token=value))
    assert [t.pk for t in statement.fetch(token.token)] == [token.pk]
    AccessToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert statement.fetch(token.token) == []
    assert list(statement._prepared.values()) == [None]


@pytest.mark.django_db(transaction=True)
def test_threads_each_use_their_own_connection(alice, make_client):
    app, _ = make_client("poll")
    tokens = [device_token(alice, app) for _ in range(4)]
    statement = CompiledSelect(AccessToken, lambda rows, value: rows.filter(token=value))
    statement.fetch(tokens[0].token)  # compiled on this thread's connection
    found: dict[int, Any] = {}
    errors: list[BaseException] = []

    def look(index: int) -> None:
        from django.db import connection as own

        try:
            found[index] = [t.pk for t in statement.fetch(tokens[index].token)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=look, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert found == {i: [tokens[i].pk] for i in range(4)}


def test_a_field_preparing_values_its_own_way_is_left_to_the_orm(alice, make_client, monkeypatch):
    """A field class of a site's own may change some values and not others: never trusted."""
    app, _ = make_client("poll")
    token = device_token(alice, app)
    field = AccessToken._meta.get_field("token")

    class OwnPreparation(type(field)):
        __module__ = "site.fields"

        def get_prep_value(self, value: Any) -> Any:
            return super().get_prep_value(value)

    monkeypatch.setattr(field, "__class__", OwnPreparation)
    statement = CompiledSelect(AccessToken, lambda tokens, value: tokens.filter(token=value))
    assert [t.pk for t in statement.fetch(token.token)] == [token.pk]
    assert list(statement._prepared.values()) == [None]


def test_the_login_hint_lookup_sends_the_orms_own_statement_with_its_block_list_column(alice, make_client):
    from ciba import identifiers, user_limits

    app, _ = make_client("poll")
    annotations = user_limits.block_annotation(app)
    compiled = identifiers._current()
    accepted = tuple(
        position
        for position, identifier in enumerate(compiled.identifiers)
        if identifiers._normalised(identifier, "alice") is not None
    )
    values = [identifiers._normalised(compiled.identifiers[p], "alice") for p in accepted]
    with CaptureQueriesContext(connection) as orm:
        list(identifiers._queryset(compiled, accepted, values, annotations)[:2])
    for _ in range(2):
        with CaptureQueriesContext(connection) as ours:
            found = identifiers.find_user("alice", annotations=annotations)
        assert [q["sql"] for q in ours.captured_queries] == [q["sql"] for q in orm.captured_queries]
    assert found.pk == alice.pk and list(annotations) == ["ciba_blocked_client"]
    assert found.ciba_blocked_client is False
    if connection.vendor == "postgresql":  # SQLite's iexact escapes the value: the ORM builds it
        statement = compiled.statements[next(iter(compiled.statements))]
        assert all(prepared is not None for prepared in statement._prepared.values())


def test_each_requests_block_list_column_finds_the_lookup_compiled_before(alice, make_client):
    """Every new request asks for its own block-list annotation (a new output field each time):
    the lookup's statement is still the one compiled for the first request."""
    from ciba import identifiers, user_limits

    app, _ = make_client("poll")
    other, _ = make_client("poll")
    compiled = identifiers._current()
    compiled.statements.clear()
    for client in (app, app, other):
        found = identifiers.find_user("alice", annotations=user_limits.block_annotation(client))
        assert found.pk == alice.pk and found.ciba_blocked_client is False
    assert len(compiled.statements) == 1
    [statement] = compiled.statements.values()
    assert len(statement._prepared) == 1  # compiled (or left to the ORM) once, not per request


# --- a read sent along with another statement (``along``) ----------------------------------------

REQUEST_BY_ID = CompiledSelect(
    AuthenticationRequest,
    lambda requests, auth_req_id: requests.select_related("client").filter(auth_req_id=auth_req_id)[:21],
)
EVERY_REQUEST_OF = CompiledSelect(AuthenticationRequest, lambda requests, user: requests.filter(user=user))


@pytest.fixture
def request_and_token(client, alice, make_client) -> tuple[str, Any]:
    """A pending request of alice's, and a consent token of hers."""
    app, secret = make_client("poll")
    return start_request(client, app, secret), device_token(alice, app)


@pytest.mark.django_db(transaction=True)
def test_a_read_sent_along_rides_in_the_next_statement_where_statements_are_prepared(
    request_and_token, prepared_statements
):
    auth_req_id, token = request_and_token
    app = token.application
    with CaptureQueriesContext(connection) as queries, along(REQUEST_BY_ID, auth_req_id) as ahead:
        found = _ACCESS_TOKEN.first(checksum(token.token))
    assert found == token and found.application == app  # the statement's own answer, whole
    if not prepared_statements:
        assert ahead.rows is None  # nothing rides: the caller reads it itself
        return
    assert len(queries) == 1
    (request,) = ahead.rows
    expected = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    with CaptureQueriesContext(connection) as queries:
        assert request.client == app  # select_related came along too
    assert queries.captured_queries == []
    for field in AuthenticationRequest._meta.concrete_fields:
        assert getattr(request, field.attname) == getattr(expected, field.attname), field.name


@pytest.mark.django_db(transaction=True)
def test_nothing_rides_where_each_statement_is_planned_at_every_run(request_and_token, default_binding):
    """Django's default binding (the joined statement would cost more to plan than it saves)."""
    auth_req_id, token = request_and_token
    with along(REQUEST_BY_ID, auth_req_id) as ahead:
        assert _ACCESS_TOKEN.first(checksum(token.token)) == token
    assert ahead.rows is None


@pytest.mark.django_db(transaction=True)
def test_an_empty_side_comes_back_empty_and_the_other_whole(alice, make_client, prepared_statements):
    app, _ = make_client("poll")
    token = device_token(alice, app)
    with along(REQUEST_BY_ID, "no-such-request") as ahead:
        assert _ACCESS_TOKEN.first(checksum(token.token)) == token
    assert ahead.rows == ([] if prepared_statements else None)
    with along(REQUEST_BY_ID, "no-such-request") as ahead:
        assert _ACCESS_TOKEN.first(checksum("no-such-token")) is None
    assert ahead.rows == ([] if prepared_statements else None)


@pytest.mark.django_db(transaction=True)
def test_a_side_of_several_rows_is_left_to_its_caller_and_the_statement_still_answers(
    client, alice, make_client, prepared_statements
):
    app, secret = make_client("poll")
    for _ in range(2):
        start_request(client, app, secret)
    token = device_token(alice, app)
    with along(EVERY_REQUEST_OF, alice.pk) as ahead:
        assert _ACCESS_TOKEN.first(checksum(token.token)) == token
    assert ahead.rows is None
    assert len(EVERY_REQUEST_OF.fetch(alice.pk)) == 2


@pytest.mark.django_db(transaction=True)
def test_only_the_first_statement_of_the_block_carries_the_read(request_and_token, prepared_statements):
    auth_req_id, token = request_and_token
    with along(REQUEST_BY_ID, auth_req_id) as ahead:
        _ACCESS_TOKEN.first(checksum(token.token))
        first = ahead.rows
        with CaptureQueriesContext(connection) as queries:
            assert _ACCESS_TOKEN.first(checksum(token.token)) == token
    assert ahead.rows is first
    assert all("ciba_first" not in q["sql"] for q in queries.captured_queries)
