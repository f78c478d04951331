"""A client's version stamp is read from the shared poll state at most once a second per process
(``ciba.client_auth.clients.STAMP_MAX_AGE``, issue 29), and a changed client is still seen:
at once in the process that changed it, within the second in every other one.

The shared store is a stand-in with the Redis store's contract (``client_version``: a value that
changes whenever the client is saved or deleted; ``forget_client`` changes it), so that "another
process" is simulated by changing the row without this process's signals and the stamp directly,
as that process's ``ciba.polling.stamps`` would after its commit.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.db import connection

from ciba.client_auth import clients
from ciba.models import Application
from tests.conftest import basic_auth

URL = "/o/backchannel-authentication/"
FORM = "application/x-www-form-urlencoded"
NEW_SECRET = "rotated-0123456789abcdef0123456789abcdef-0123456789"


class SharedStamps:
    """The part of ``RedisPollState`` the client row cache uses, counting its reads."""

    shared = True

    def __init__(self) -> None:
        self.stamps: dict[str, bytes] = {}
        self.reads = 0

    def client_version(self, client_id: str) -> bytes:
        self.reads += 1
        return self.stamps.get(client_id, b"-")

    def forget_client(self, client_id: str) -> None:
        self.stamps[client_id] = secrets.token_bytes(16)

    def __getattr__(self, name: str) -> Any:  # the rest of the poll state: the database's
        from ciba.polling import DatabasePollState

        return getattr(DatabasePollState(), name)


@pytest.fixture
def stamps(monkeypatch: Any) -> SharedStamps:
    store = SharedStamps()
    monkeypatch.setattr(clients, "poll_state", lambda: store)
    monkeypatch.setattr("ciba.polling.stamps.poll_state", lambda: store)
    clients.clear()
    yield store
    clients.clear()


@pytest.fixture
def clock(monkeypatch: Any) -> list[float]:
    """The cache's clock, moved by the test."""
    moment = [1000.0]
    monkeypatch.setattr(clients, "monotonic", lambda: moment[0])
    return moment


def start(client: Any, app: Any, secret: str, hint: str = "alice") -> Any:
    return client.post(
        URL,
        f"scope=openid&login_hint={hint}",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def changed_elsewhere(app: Any, stamps: SharedStamps, **fields: Any) -> None:
    """Another process saved the client: the row changed (no signal here), then its stamp."""
    Application.objects.filter(pk=app.pk).update(**fields)
    stamps.forget_client(app.client_id)


def test_requests_within_a_second_read_the_clients_stamp_once(client, alice, make_client, stamps, clock):
    app, secret = make_client("poll")
    for _ in range(5):  # each authenticated, then refused for its unknown user: nothing stored
        assert start(client, app, secret, hint="nobody").json()["error"] == "unknown_user_id"
        clock[0] += 0.1
    assert stamps.reads == 1
    clock[0] += 0.6
    assert start(client, app, secret).status_code == 200
    assert stamps.reads == 2


def test_a_secret_rotated_in_this_process_is_refused_at_once(
    client, alice, make_client, stamps, clock, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    assert start(client, app, secret).status_code == 200  # the row is cached here

    with django_capture_on_commit_callbacks(execute=True):
        app.client_secret = NEW_SECRET
        app.save()

    assert start(client, app, secret).status_code == 401
    assert start(client, app, NEW_SECRET).status_code == 200


def test_a_client_deleted_in_this_process_is_refused_at_once(
    client, alice, make_client, stamps, clock, django_capture_on_commit_callbacks
):
    app, secret = make_client("poll")
    assert start(client, app, secret, hint="nobody").status_code == 400  # authenticated, cached
    with django_capture_on_commit_callbacks(execute=True):
        Application.objects.get(pk=app.pk).delete()
    assert start(client, app, secret).status_code == 401


def test_a_secret_rotated_in_another_process_is_refused_once_the_stamp_is_read_again(
    client, alice, make_client, stamps, clock
):
    from django.contrib.auth.hashers import make_password

    app, secret = make_client("poll")
    assert start(client, app, secret).status_code == 200
    changed_elsewhere(app, stamps, client_secret=make_password(NEW_SECRET))

    clock[0] += clients.STAMP_MAX_AGE
    assert start(client, app, secret).status_code == 401
    assert start(client, app, NEW_SECRET).status_code == 200


def test_a_client_revoked_in_another_process_is_refused_within_a_second(
    client, alice, make_client, stamps, clock
):
    app, secret = make_client("poll")
    assert start(client, app, secret).status_code == 200
    changed_elsewhere(app, stamps, authorization_grant_type="client-credentials")

    clock[0] += clients.STAMP_MAX_AGE
    response = start(client, app, secret)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_a_client_deleted_in_another_process_is_refused_within_a_second(
    client, alice, make_client, stamps, clock
):
    app, secret = make_client("poll")
    assert start(client, app, secret, hint="nobody").status_code == 400  # authenticated, cached
    with connection.cursor() as cursor:  # no signal in this process
        cursor.execute(f"DELETE FROM {Application._meta.db_table} WHERE id = %s", [app.pk])
    stamps.forget_client(app.client_id)

    clock[0] += clients.STAMP_MAX_AGE
    assert start(client, app, secret).status_code == 401


def test_forget_client_makes_this_process_read_the_row_again_at_once(
    client, alice, make_client, stamps, clock
):
    """The documented call after a ``QuerySet.update()`` (no signal)."""
    from django.contrib.auth.hashers import make_password

    from ciba.client_auth import forget_client

    app, secret = make_client("poll")
    assert start(client, app, secret).status_code == 200
    Application.objects.filter(pk=app.pk).update(client_secret=make_password(NEW_SECRET))
    forget_client(app.client_id)
    assert start(client, app, secret).status_code == 401


def test_a_row_read_while_this_process_changed_the_client_is_not_kept(
    make_client, stamps, clock, monkeypatch
):
    app, _ = make_client("poll")
    read = stamps.client_version

    def changed_meanwhile(client_id: str) -> bytes:
        version = read(client_id)
        clients.clear()  # what this process's commit of a change of the client does
        return version

    monkeypatch.setattr(stamps, "client_version", changed_meanwhile)
    assert clients.load_client(app.client_id).pk == app.pk
    assert clients.load_client(app.client_id).pk == app.pk
    assert stamps.reads == 2  # the first row was not kept: it may predate the change


def test_a_client_is_re_read_after_max_age_even_if_its_stamp_never_changes(
    make_client, stamps, clock, django_assert_num_queries
):
    app, _ = make_client("poll")
    clients.load_client(app.client_id)
    clock[0] += clients.STAMP_MAX_AGE
    with django_assert_num_queries(0):
        clients.load_client(app.client_id)
    clock[0] += clients.MAX_AGE
    with django_assert_num_queries(1):
        clients.load_client(app.client_id)
