"""Finding the user a login_hint names (CIBA §7.1, issue 28): the identifiers a site configures,
each normalised (e-mail in any case, a phone number however it is written, an IBAN with its
check digits), one query whatever the answer, and unknown_user_id for nobody, for more than one
user and for an inactive one; never a guess and never a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ciba import identifiers, user_limits
from ciba.models import AuthenticationRequest, Device
from example_project.demo.models import Profile
from tests.conftest import basic_auth

URL = "/o/backchannel-authentication/"

#: The example project's identifiers (example_project/settings.py).
DEMO = [
    {"field": "username", "normalizer": "ciba.identifiers.exact", "lookup": "exact"},
    {"field": "email", "normalizer": "ciba.identifiers.email", "lookup": "iexact"},
    {"field": "profile__phone_number", "normalizer": "ciba.identifiers.phone_number", "lookup": "exact"},
    {"field": "profile__account_iban", "normalizer": "ciba.identifiers.iban", "lookup": "exact"},
]
#: Ofcom's drama range (never a real line), valid to libphonenumber.
ALICE_PHONE, BOB_PHONE = "+442079460123", "+442079460456"
ALICE_IBAN, BOB_IBAN = "GB82WEST12345698765432", "GB55WEST12345698765433"


def casefolded_username(value: str) -> str | None:
    """A site's own normaliser (named by dotted path in the tests below): usernames are stored
    lower-case, and a kiosk may type them in any case and with spaces around."""
    value = value.strip()
    return value.lower() if value.isalnum() else None


@pytest.fixture
def demo_identifiers(settings: Any) -> None:
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": DEMO, "PHONE_NUMBER_REGION": "GB"}


@pytest.fixture
def customers(db: Any, alice: Any) -> tuple[Any, Any]:
    """alice and bob, each with a phone number and an account, stored as the demo stores them."""
    bob = get_user_model().objects.create_user("bob", "bob@example.com", "bob-password")
    Profile.objects.create(user=alice, phone_number=ALICE_PHONE, account_iban=ALICE_IBAN)
    Profile.objects.create(user=bob, phone_number=BOB_PHONE, account_iban=BOB_IBAN)
    return alice, bob


@pytest.fixture
def ask(client: Any, make_client: Any) -> Any:
    """POST a backchannel request with ``login_hint`` as a real poll client does."""
    app, secret = make_client("poll")

    def post(hint: str) -> Any:
        return client.post(
            URL,
            urlencode({"scope": "openid", "login_hint": hint}),
            content_type="application/x-www-form-urlencoded",
            HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        )

    return post


def user_of(response: Any) -> Any:
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"]).user


def error_of(response: Any) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error"]


# --- phone numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "+44 20 7946 0123",
        "020 7946 0123",
        "(020) 7946-0123",
        "+442079460123",
        "0044 20 7946 0123",
        "+44 (0)20 7946 0123",
        " 020-7946-0123 ",
    ],
)
def test_a_phone_number_written_any_usual_way_finds_its_owner_in_the_sites_region(
    ask, customers, demo_identifiers, written
):
    alice, _ = customers
    assert user_of(ask(written)) == alice


@pytest.mark.parametrize("written", ["+44 20 7946 0123", "+442079460123", "+44 (0)20 7946 0123"])
def test_without_a_region_an_international_phone_number_still_finds_its_owner(
    ask, customers, settings, written
):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": DEMO, "PHONE_NUMBER_REGION": ""}
    alice, _ = customers
    assert user_of(ask(written)) == alice


@pytest.mark.parametrize("written", ["020 7946 0123", "(020) 7946-0123", "02079460123"])
def test_without_a_region_a_national_phone_number_names_nobody(ask, customers, settings, written):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": DEMO, "PHONE_NUMBER_REGION": ""}
    assert error_of(ask(written)) == "unknown_user_id"


@pytest.mark.parametrize(
    "written",
    [
        "020 7946 0124",  # nobody's
        "+44 20 7946 0123 ext. 5",  # an extension is not the line
        "+1 202 555 0199x",  # letters
        "07700 900123",  # Ofcom's drama mobiles: not a valid number to libphonenumber
        "+44 20 7946 01234567",  # too long for its region
    ],
)
def test_a_phone_number_that_is_not_a_customers_valid_line_names_nobody(
    ask, customers, demo_identifiers, written
):
    assert error_of(ask(written)) == "unknown_user_id"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "+",
        "++44",
        "0" * 300,
        "(((())))",
        "+44\u00a020\u20097946\u00a00123",
        "٠٢٠٧٩٤٦٠١٢٣",
        "\ud800",
        "+999 1",
    ],
)
def test_the_phone_normaliser_never_raises(settings, value):
    settings.CIBA = {**settings.CIBA, "PHONE_NUMBER_REGION": "GB"}
    result = identifiers.phone_number(value)
    assert result is None or (result.startswith("+") and result[1:].isdigit())


# --- account numbers (IBAN) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["GB55 WEST 1234 5698 7654 33", "gb55west12345698765433", " GB55WEST12345698765433 "]
)
def test_an_iban_with_spaces_or_in_lower_case_finds_the_account_holder(
    ask, customers, demo_identifiers, written
):
    _, bob = customers
    assert user_of(ask(written)) == bob


def test_an_iban_with_a_wrong_check_digit_names_nobody_even_if_it_is_stored(ask, customers, demo_identifiers):
    """A mistyped account number must not find an account, even a row that holds the same
    wrong characters (written there by hand, past the form's validation)."""
    alice, _ = customers
    Profile.objects.filter(user=alice).update(account_iban="GB83WEST12345698765432")
    assert error_of(ask("GB83 WEST 1234 5698 7654 32")) == "unknown_user_id"
    assert error_of(ask("GB82 WEST 1234 5698 7654 32")) == "unknown_user_id"


# --- e-mail and ambiguity -------------------------------------------------------------------------


@pytest.mark.parametrize("configured", [None, DEMO])
@pytest.mark.parametrize("written", ["ALICE@EXAMPLE.COM", "Alice@Example.com", "  alice@example.com "])
def test_an_email_in_another_case_finds_the_user(ask, customers, settings, configured, written):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": configured}
    alice, _ = customers
    assert user_of(ask(written)) == alice


def test_a_stored_address_in_mixed_case_is_found_by_any_case(ask, db, demo_identifiers):
    carol = get_user_model().objects.create_user("carol", "Carol.Jones@Example.COM")
    assert user_of(ask("carol.jones@example.com")) == carol


def test_an_email_shared_by_two_users_is_unknown_user_id_at_the_endpoint(ask, customers, demo_identifiers):
    get_user_model().objects.create_user("alice-work", "Alice@Example.com")
    response = ask("alice@example.com")
    assert error_of(response) == "unknown_user_id"
    assert not AuthenticationRequest.objects.exists()


def test_a_hint_that_is_one_users_username_and_anothers_phone_number_names_nobody(
    ask, customers, demo_identifiers
):
    get_user_model().objects.create_user(ALICE_PHONE, "mallory@example.com")
    assert error_of(ask(ALICE_PHONE)) == "unknown_user_id"


def test_one_user_found_twice_through_a_relation_to_many_rows_is_still_one_user(ask, customers, settings):
    """Two devices with the same push token: the join yields alice twice, she is still one user."""
    alice, _ = customers
    for label in ("Phone", "Tablet"):
        Device.objects.create(user=alice, kind=Device.Kind.WEBHOOK, token="gateway-handle-7", label=label)
    settings.CIBA = {
        **settings.CIBA,
        "LOGIN_HINT_IDENTIFIERS": [{"field": "ciba_devices__token", "normalizer": "ciba.identifiers.exact"}],
    }
    assert user_of(ask("gateway-handle-7")) == alice


# --- inactive users ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hint", ["alice", "alice@example.com", "020 7946 0123", "GB82 WEST 1234 5698 7654 32"]
)
def test_an_inactive_user_is_never_found_by_any_identifier(ask, customers, demo_identifiers, hint):
    alice, _ = customers
    alice.is_active = False
    alice.save()
    assert error_of(ask(hint)) == "unknown_user_id"


def test_an_inactive_users_duplicate_address_does_not_hide_the_active_one(ask, customers, demo_identifiers):
    alice, _ = customers
    get_user_model().objects.create_user("old-alice", "alice@example.com", is_active=False)
    assert user_of(ask("alice@example.com")) == alice


# --- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hint, error",
    [
        ("a" * 10_000, "unknown_user_id"),
        ("+44 " + "2" * 10_000, "unknown_user_id"),
        ("alice@example.com" + " " * 300, "unknown_user_id"),
        ("GB82" * 2500, "unknown_user_id"),
        ("alice\x00", "invalid_request"),  # the endpoint refuses a NUL in any parameter first
    ],
)
def test_a_huge_or_nul_hint_is_a_400_and_never_reaches_the_database(
    ask, customers, demo_identifiers, hint, error
):
    assert error_of(ask(hint)) == error
    with CaptureQueriesContext(connection) as queries:
        assert identifiers.find_user(hint) is None
    assert len(queries) == 0


# --- timing: one query whatever the answer ------------------------------------------------------------


def test_unknown_inactive_ambiguous_and_found_identifiers_cost_the_same_one_query(
    customers, demo_identifiers
):
    alice, bob = customers
    bob.is_active = False
    bob.save()
    User = get_user_model()
    User.objects.create_user("dora", "shared@example.com")
    User.objects.create_user("dora2", "SHARED@example.com")
    counts = {}
    for case, hint in {
        "found": "020 7946 0123",
        "unknown": "020 7946 0999",
        "inactive": "020 7946 0456",
        "ambiguous": "shared@example.com",
    }.items():
        with CaptureQueriesContext(connection) as queries:
            found = identifiers.find_user(hint)
        assert (found == alice) == (case == "found")
        counts[case] = len(queries)
    assert counts == {"found": 1, "unknown": 1, "inactive": 1, "ambiguous": 1}


# --- a site's own normaliser, and configuration changes -----------------------------------------------


def test_a_sites_own_normaliser_named_by_dotted_path_is_used(ask, customers, settings):
    settings.CIBA = {
        **settings.CIBA,
        "LOGIN_HINT_IDENTIFIERS": [
            {"field": "username", "normalizer": "tests.test_identifiers.casefolded_username"}
        ],
    }
    alice, _ = customers
    assert user_of(ask("  ALICE ")) == alice
    assert error_of(ask("alice@example.com")) == "unknown_user_id"  # e-mail is not configured


def broken_normaliser(value: str) -> str | None:
    """A site's normaliser with a bug: it raises where it should answer None."""
    return value.split("-")[1]


def test_a_sites_normaliser_that_raises_is_logged_and_never_a_500(ask, customers, settings, caplog):
    settings.CIBA = {
        **settings.CIBA,
        "LOGIN_HINT_IDENTIFIERS": [
            {"field": "username"},
            {"field": "username", "normalizer": "tests.test_identifiers.broken_normaliser"},
        ],
    }
    alice, _ = customers
    assert error_of(ask("no dash here")) == "unknown_user_id"
    assert user_of(ask("alice")) == alice  # the other identifiers still answer
    assert any(r.name == "ciba.identifiers" and r.exc_info for r in caplog.records)


def test_changed_identifiers_take_effect_at_once(ask, customers, settings):
    alice, _ = customers
    assert error_of(ask("GB82 WEST 1234 5698 7654 32")) == "unknown_user_id"  # the default: no IBANs
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": DEMO}
    assert user_of(ask("GB82 WEST 1234 5698 7654 32")) == alice
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": None}
    assert error_of(ask("GB82 WEST 1234 5698 7654 32")) == "unknown_user_id"


def test_a_broken_configuration_fails_loudly_naming_the_check(customers, settings):
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_IDENTIFIERS": [{"field": "profile__nope"}]}
    with pytest.raises(ImproperlyConfigured, match="ciba.E051"):
        identifiers.find_user("alice")


# --- login_hint_token: a client-signed token's sub is read like a login_hint --------------------------


def test_a_client_signed_login_hint_tokens_sub_may_be_a_phone_number(
    client, customers, demo_identifiers, make_client
):
    import time

    from tests.keys import public_jwk, rsa_key, sign

    key = rsa_key()
    app, secret = make_client("poll", jwks={"keys": [public_jwk(key, "k1")]})
    claims = {
        "iss": app.client_id,
        "aud": "http://testserver/o",
        "sub": "020 7946 0456",
        "exp": int(time.time()) + 60,
    }
    response = client.post(
        URL,
        urlencode({"scope": "openid", "login_hint_token": sign(claims, key, "RS256", "k1")}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert user_of(response) == customers[1]


# --- the example project's demo ----------------------------------------------------------------------


def test_every_login_hint_the_demo_prints_names_its_user(
    db, ask, demo_identifiers, no_user_limits, tmp_path, settings
):
    import json
    from io import StringIO

    from django.core.management import call_command

    settings.CIBA_DEMO_CLIENTS_FILE = str(tmp_path / "clients.json")
    out = StringIO()
    call_command("ciba_demo_data", "--json", stdout=out)
    users = json.loads(out.getvalue())["users"]
    for name in ("alice", "bob"):
        assert len(users[name]["login_hints"]) == 4
        for hint in users[name]["login_hints"]:
            assert user_of(ask(hint)).username == name, hint


def test_the_block_list_asked_with_the_lookup_costs_no_query_more_whatever_the_answer(
    customers, demo_identifiers, make_client
):
    """issue 29: the block list rides in the lookup's one query, through a relation (the phone
    number, a join) as well as on the user's own columns, and answers for the user found."""
    alice, bob = customers
    kiosk, _ = make_client()
    user_limits.block(bob, kiosk)
    answers = {}
    for hint in ("020 7946 0123", "020 7946 0456", "020 7946 0999", "bob@example.com"):
        with CaptureQueriesContext(connection) as queries:
            user = identifiers.find_user(hint, annotations=user_limits.block_annotation(kiosk))
        assert len(queries) == 1
        answers[hint] = None if user is None else (user, user.__dict__.get(user_limits.BLOCKED_ANNOTATION))
    assert answers == {
        "020 7946 0123": (alice, False),
        "020 7946 0456": (bob, True),
        "020 7946 0999": None,
        "bob@example.com": (bob, True),
    }


# --- the lookup's statement is written once per shape (issue 29) ---------------------------------------


def test_a_lookup_is_written_once_and_then_only_run(alice, monkeypatch):
    monkeypatch.setattr(identifiers, "_compiled", None)
    built = []
    original = identifiers._queryset
    monkeypatch.setattr(identifiers, "_queryset", lambda *args: built.append(args) or original(*args))
    assert identifiers.find_user("alice") == alice
    assert identifiers.find_user("alice") == alice
    assert identifiers.find_user("nobody") is None
    assert len(built) == 1  # written for the first, run for the others


def test_like_wildcards_in_an_address_match_only_that_address(alice, make_client):
    """A written statement sends the hint as the ORM would: never as a pattern."""
    User = get_user_model()
    under = User.objects.create_user("under", "a_b@example.com")
    percent = User.objects.create_user("percent", "c%d@example.com")
    for _ in range(2):  # written by the first round, run by the second
        assert identifiers.find_user("A_B@example.com") == under
        assert identifiers.find_user("axb@example.com") is None
        assert identifiers.find_user("c%d@EXAMPLE.com") == percent
        assert identifiers.find_user("c%@example.com") is None
        assert identifiers.find_user("%@example.com") is None


def test_a_user_manager_that_narrows_its_users_is_asked_every_time(alice, monkeypatch):
    """A site's own get_queryset may narrow by what changes per request (a tenant): such a
    lookup is never written once, and what the manager leaves out is never found."""
    User = get_user_model()
    manager_class = type(User._default_manager)
    narrowing = {"username": "nobody-at-all"}
    monkeypatch.setattr(
        manager_class,
        "get_queryset",
        lambda self: super(manager_class, self).get_queryset().exclude(**narrowing),
    )
    monkeypatch.setattr(identifiers, "_compiled", None)
    assert identifiers.find_user("alice") == alice
    narrowing["username"] = "alice"
    assert identifiers.find_user("alice") is None
