"""Initial access tokens (RFC 7591 §3): issued once, stored hashed, spent one use at a time, and
managed with ``manage.py ciba_initial_access_token``."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ciba.client_registration import initial_access_tokens
from ciba.models import InitialAccessToken

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("ciba_initial_access_token", *args, stdout=out)
    return out.getvalue()


def test_an_issued_token_carries_256_random_bits_and_only_its_hash_is_stored() -> None:
    token, row = initial_access_tokens.issue("Acme developer portal")

    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32
    stored = InitialAccessToken.objects.get(pk=row.pk)
    assert token not in json.dumps(
        {f.name: str(getattr(stored, f.name)) for f in InitialAccessToken._meta.fields}
    )
    assert stored.token_hash == initial_access_tokens.token_hash(token)
    assert initial_access_tokens.find(token) == row


def test_two_tokens_issued_for_the_same_party_differ() -> None:
    first, _ = initial_access_tokens.issue("Acme")
    second, _ = initial_access_tokens.issue("Acme")

    assert first != second


def test_a_token_never_issued_or_empty_is_not_found() -> None:
    initial_access_tokens.issue("Acme")

    assert initial_access_tokens.find("not-a-token") is None
    assert initial_access_tokens.find("") is None


def test_a_new_token_allows_one_registration_for_a_day_by_default() -> None:
    _, row = initial_access_tokens.issue("Acme")

    assert row.uses_left == 1
    assert timedelta(hours=23, minutes=59) < row.expires - timezone.now() <= timedelta(days=1)
    assert initial_access_tokens.state(row) == "usable"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"uses": 0},
        {"uses": -1},
        {"uses": True},
        {"expires_in": 0},
        {"allowed_metadata": ["grant_types"]},
        {"allowed_metadata": {"grant_type": ["client_credentials"]}},  # misspelt: would constrain nothing
    ],
)
def test_limits_no_one_could_use_are_refused_when_issuing(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        initial_access_tokens.issue("Acme", **kwargs)
    assert not InitialAccessToken.objects.exists()


def test_a_token_without_a_name_is_refused() -> None:
    with pytest.raises(ValueError):
        initial_access_tokens.issue("  ")


def test_a_single_allowed_value_is_stored_as_a_list_of_one() -> None:
    _, row = initial_access_tokens.issue("Acme", allowed_metadata={"backchannel_token_delivery_mode": "poll"})

    assert row.allowed_metadata == {"backchannel_token_delivery_mode": ["poll"]}


def test_a_single_use_token_is_spent_once() -> None:
    _, row = initial_access_tokens.issue("Acme", uses=1)

    assert initial_access_tokens.take_one_use(row.pk) is True
    assert initial_access_tokens.take_one_use(row.pk) is False
    row.refresh_from_db()
    assert row.uses_left == 0
    assert initial_access_tokens.state(row) == "used up"


def test_a_token_of_unlimited_uses_stays_unlimited() -> None:
    _, row = initial_access_tokens.issue("Acme", uses=None, expires_in=None)

    for _ in range(3):
        assert initial_access_tokens.take_one_use(row.pk) is True
    row.refresh_from_db()
    assert row.uses_left is None
    assert row.expires is None


def test_an_expired_token_is_neither_usable_nor_spent() -> None:
    _, row = initial_access_tokens.issue("Acme", uses=3)
    InitialAccessToken.objects.filter(pk=row.pk).update(expires=timezone.now() - timedelta(seconds=1))
    row.refresh_from_db()

    assert initial_access_tokens.state(row) == "expired"
    assert initial_access_tokens.take_one_use(row.pk) is False
    row.refresh_from_db()
    assert row.uses_left == 3


def test_a_revoked_token_of_unlimited_uses_is_refused() -> None:
    _, row = initial_access_tokens.issue("Acme", uses=None)
    initial_access_tokens.revoke(row.pk)
    row.refresh_from_db()

    assert initial_access_tokens.state(row) == "revoked"
    assert initial_access_tokens.problem(row) == "The initial access token has been revoked."
    assert initial_access_tokens.take_one_use(row.pk) is False


def test_revoking_twice_keeps_the_first_time() -> None:
    _, row = initial_access_tokens.issue("Acme")
    first = initial_access_tokens.revoke(row.pk)
    second = initial_access_tokens.revoke(row.pk)

    assert first is not None and second is not None
    assert first.revoked == second.revoked
    assert initial_access_tokens.revoke(row.pk + 1000) is None


# --- manage.py ciba_initial_access_token ------------------------------------------------------


def test_the_command_prints_a_token_that_admits_one_registration_by_default() -> None:
    output = run("Acme developer portal")

    token = output.strip().splitlines()[-1].split()[0]
    row = initial_access_tokens.find(token)
    assert row is not None
    assert row.name == "Acme developer portal"
    assert row.uses_left == 1
    assert "shown once" in output


def test_the_command_issues_unlimited_tokens_that_never_expire() -> None:
    result = json.loads(run("Conformance suite", "--uses", "unlimited", "--expires-in", "never", "--json"))

    row = initial_access_tokens.find(result["initial_access_token"])
    assert row is not None
    assert (row.uses_left, row.expires) == (None, None)
    assert result["uses_left"] is None
    assert result["expires"] is None
    assert result["state"] == "usable"


def test_the_command_scopes_a_token_to_the_metadata_it_allows() -> None:
    result = json.loads(
        run(
            "Kiosk vendor",
            "--uses",
            "5",
            "--expires-in",
            "3600",
            "--allow",
            "backchannel_token_delivery_mode=poll,ping",
            "--allow",
            "grant_types=urn:openid:params:grant-type:ciba",
            "--allow",
            "backchannel_token_delivery_mode=ping",
            "--allow",
            "dpop_bound_access_tokens=True",
            "--json",
        )
    )

    row = initial_access_tokens.find(result["initial_access_token"])
    assert row is not None
    assert row.uses_left == 5
    assert row.allowed_metadata == {
        "backchannel_token_delivery_mode": ["poll", "ping"],
        "grant_types": ["urn:openid:params:grant-type:ciba"],
        "dpop_bound_access_tokens": [True],
    }


@pytest.mark.parametrize(
    "args",
    [
        ("Acme", "--uses", "0"),
        ("Acme", "--uses", "many"),
        ("Acme", "--expires-in", "tomorrow"),
        ("Acme", "--allow", "grant_types"),
        ("Acme", "--allow", "grant_types="),
        ("Acme", "--allow", "grant_type=client_credentials"),
        ("Acme", "--allow", "dpop_bound_access_tokens=yes"),
        (),
    ],
)
def test_the_command_refuses_what_it_cannot_mean_and_issues_nothing(args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        run(*args)
    assert not InitialAccessToken.objects.exists()


def test_the_list_shows_each_token_and_its_state_but_never_the_token() -> None:
    token, row = initial_access_tokens.issue("Acme", allowed_metadata={"grant_types": ["client_credentials"]})
    _, spent = initial_access_tokens.issue("Spent")
    initial_access_tokens.take_one_use(spent.pk)

    text = run("--list")
    listed = {entry["name"]: entry for entry in json.loads(run("--list", "--json"))}

    assert token not in text and row.token_hash not in text
    assert "Acme" in text and "usable" in text and "used up" in text
    assert listed["Acme"]["allowed_metadata"] == {"grant_types": ["client_credentials"]}
    assert listed["Spent"]["state"] == "used up"
    assert "initial_access_token" not in listed["Acme"]


def test_the_command_revokes_a_token_by_id() -> None:
    token, row = initial_access_tokens.issue("Acme")

    output = run("--revoke", str(row.pk))

    assert "revoked" in output
    found = initial_access_tokens.find(token)
    assert found is not None and initial_access_tokens.state(found) == "revoked"
    with pytest.raises(CommandError, match="No initial access token"):
        run("--revoke", str(row.pk + 1000))
