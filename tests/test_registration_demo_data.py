"""``ciba_demo_data --initial-access-token``: the demo's way to let a developer register a client."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ciba.client_registration import initial_access_tokens
from ciba.models import InitialAccessToken


@pytest.fixture(autouse=True)
def kiosk_file(settings, tmp_path):
    settings.CIBA_DEMO_CLIENTS_FILE = tmp_path / "demo_clients.json"


def demo(*args: str) -> dict:
    out = StringIO()
    call_command("ciba_demo_data", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_the_printed_token_is_a_single_use_token_for_a_day_stored_only_as_its_hash(db):
    issued = demo("--initial-access-token")["initial_access_token"]

    row = initial_access_tokens.find(issued["token"])
    assert row is not None and initial_access_tokens.state(row) == "usable"
    assert row.uses_left == issued["uses"] == 1
    assert timedelta(hours=23) < row.expires - timezone.now() <= timedelta(days=1)
    assert row.created_by.username == "admin"
    assert not InitialAccessToken.objects.filter(token_hash=issued["token"]).exists()
    assert issued["registration_endpoint"].endswith("/o/register/")


def test_each_run_that_asks_issues_a_new_token_and_others_issue_none(db):
    first = demo("--initial-access-token")["initial_access_token"]["token"]
    second = demo("--initial-access-token")["initial_access_token"]["token"]
    assert first != second and InitialAccessToken.objects.count() == 2
    assert "initial_access_token" not in demo()
    assert InitialAccessToken.objects.count() == 2


@pytest.mark.parametrize(("uses", "stored"), [("3", 3), ("unlimited", None)])
def test_the_number_of_uses_can_be_raised_or_lifted(db, uses, stored):
    issued = demo("--initial-access-token-uses", uses)["initial_access_token"]
    assert initial_access_tokens.find(issued["token"]).uses_left == stored == issued["uses"]


@pytest.mark.parametrize("uses", ["0", "-1", "many"])
def test_a_number_of_uses_that_means_nothing_is_refused(db, uses):
    with pytest.raises(CommandError):
        demo("--initial-access-token-uses", uses)
    assert not InitialAccessToken.objects.exists()


def test_the_text_output_shows_the_token_and_says_when_registration_is_off(db, settings):
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ENABLED": False}
    out = StringIO()
    call_command("ciba_demo_data", "--initial-access-token", stdout=out)
    token = next(line for line in out.getvalue().splitlines() if "initial access token" in line).split()[3]
    assert initial_access_tokens.find(token) is not None
    assert "registration is off on this server" in out.getvalue()


def test_the_printed_token_registers_a_client_at_the_registration_endpoint(db, client, settings):
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ENABLED": True}
    token = demo("--initial-access-token")["initial_access_token"]["token"]
    body = {
        "client_name": "Corner Shop kiosk",
        "grant_types": ["urn:openid:params:grant-type:ciba"],
        "backchannel_token_delivery_mode": "poll",
        "token_endpoint_auth_method": "client_secret_basic",
    }
    response = client.post(
        "/o/register/",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content
    assert response.json()["client_secret"]
