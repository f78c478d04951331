"""The request table keeps room for the notification batch's lease and writes no index it does
not read (migration 0023): on PostgreSQL, where the fill factor and the indexes live."""

from __future__ import annotations

import pytest
from django.db import connection

from ciba import device_outbox
from ciba.models import AuthenticationRequest

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's storage and indexes"),
]

TABLE = AuthenticationRequest._meta.db_table


def indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [TABLE])
        return dict(cursor.fetchall())


def plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_new_rows_leave_room_on_their_page_for_the_lease():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [TABLE])
        [options] = cursor.fetchone()
    assert "fillfactor=70" in options


def test_no_pattern_index_twin_and_no_second_index_on_the_user():
    found = indexes()
    assert not [name for name, definition in found.items() if "varchar_pattern_ops" in definition]
    user_indexes = [name for name, definition in found.items() if "(user_id" in definition]
    assert user_indexes == ["ciba_req_user_state_exp"]
    assert any("UNIQUE" in definition and "(auth_req_id)" in definition for definition in found.values())


def test_lookups_by_user_and_by_auth_req_id_still_use_an_index(alice):
    by_user = AuthenticationRequest.objects.filter(user=alice).only("pk").query
    sql, params = by_user.sql_with_params()
    assert "ciba_req_user_state_exp" in plan(sql, list(params))
    by_id = AuthenticationRequest.objects.filter(auth_req_id="x").only("pk").query
    sql, params = by_id.sql_with_params()
    assert "auth_req_id_key" in plan(sql, list(params))


def test_a_batch_still_notifies_each_request_once(client, alice, make_client):
    from .conftest import start_request

    ids = [start_request(client, *make_client("poll")) for _ in range(3)]  # one each: the caps
    assert device_outbox.notify_due() == 3
    assert device_outbox.notify_due() == 0
    rows = AuthenticationRequest.objects.filter(auth_req_id__in=ids)
    assert (
        sorted(rows.values_list("device_notification_status", "device_notification_attempts"))
        == [("sent", 1)] * 3
    )
