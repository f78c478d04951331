"""`manage.py ciba_demo_data`: the demo's users, clients, phones and tokens, idempotently."""

import json
from io import StringIO

from django.core.management import call_command


def demo_data() -> dict:
    out = StringIO()
    call_command("ciba_demo_data", "--json", "--notification-base-url", "http://127.0.0.1:9/cb", stdout=out)
    return json.loads(out.getvalue())


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_each_user_gets_a_working_consent_api_token_and_a_registered_phone(db, client):
    data = demo_data()

    for name in ("alice", "bob"):
        user = data["users"][name]
        assert user["login_hint"] == name
        assert client.get("/o/ciba/requests/", **bearer(user["consent_token"])).status_code == 200
        devices = client.get("/o/ciba/devices/", **bearer(user["consent_token"])).json()
        assert [d["id"] for d in devices] == [user["device"]["id"]]
    assert {c["mode"] for c in data["clients"].values()} == {"poll", "ping", "push"}
    assert data["clients"]["ping"]["notification_endpoint"] == "http://127.0.0.1:9/cb/ping/"


def test_running_it_again_keeps_the_rows_and_revokes_the_old_tokens(db, client):
    first, second = demo_data(), demo_data()

    assert {m: c["client_id"] for m, c in first["clients"].items()} == {
        m: c["client_id"] for m, c in second["clients"].items()
    }
    alice_then, alice_now = first["users"]["alice"], second["users"]["alice"]
    assert alice_then["device"] == alice_now["device"]
    assert client.get("/o/ciba/requests/", **bearer(alice_then["consent_token"])).status_code == 401
    assert client.get("/o/ciba/requests/", **bearer(alice_now["consent_token"])).status_code == 200
