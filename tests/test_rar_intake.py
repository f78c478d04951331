"""What a client may ask at the backchannel endpoint beyond scope, and what it is told when the
server will not take it: ``authorization_details`` (RFC 9396 §2, §3, §5), ``request_context``
(CIBA §7.1) with the site's ``REQUEST_CONTEXT_VALIDATOR``, ``resource`` (RFC 8707 §2), as form
parameters and as members of a signed request (§7.1.1), where a member the server does not
implement is refused, never dropped. Whatever is refused leaves no request behind."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.http import QueryDict
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ciba.backchannel import rules
from ciba.checks.configuration import check_ciba_settings
from ciba.errors import InvalidRequest, InvalidTarget
from ciba.models import AuthenticationRequest
from tests.keys import public_jwk, request_object_claims, rsa_key, sign
from tests.protocol import backchannel, oauth_error

ISSUER = "http://testserver/o"
KEY = rsa_key()
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"amount": "12.50", "currency": "EUR"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE89 3704 0044 0532 0130 00"},
    "remittanceInformationUnstructured": "Kiosk 7, order 1234",
}
#: The payment as stored and shown: the IBAN without its print spaces.
STORED_PAYMENT = {**PAYMENT, "creditorAccount": {"iban": "DE89370400440532013000"}}
BASE = {"scope": "openid", "login_hint": "alice"}


@pytest.fixture
def payer(make_client):
    """A poll client registered for payments."""
    return make_client("poll", authorization_details_types=["payment_initiation"])


@pytest.fixture
def signer(make_client):
    """A client that signs its requests, registered for payments."""
    return make_client(
        "poll",
        backchannel_authentication_request_signing_alg="PS256",
        jwks={"keys": [public_jwk(KEY, "k1")]},
        authorization_details_types=["payment_initiation"],
    )


def signed(client, app, secret, **members: Any):
    claims = {**request_object_claims(app.client_id, ISSUER), **members}
    token = sign({k: v for k, v in claims.items() if v is not None}, KEY, "PS256", "k1")
    return backchannel(client, app, secret, {"request": token})


def accepted(response) -> AuthenticationRequest:
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"])


def refused(response, status: int, code: str, words: str = "") -> dict:
    body = oauth_error(response, status, code)
    assert words in body.get("error_description", ""), body
    assert not AuthenticationRequest.objects.exists()
    return body


# --- authorization_details ------------------------------------------------------------------


def test_a_payment_sent_as_a_form_parameter_is_stored_as_validated(client, alice, payer):
    app, secret = payer
    ar = accepted(backchannel(client, app, secret, {**BASE, "authorization_details": json.dumps([PAYMENT])}))
    assert ar.authorization_details == [STORED_PAYMENT]
    assert ar.approved_authorization_details is None  # nobody has approved anything yet


def test_a_payment_inside_a_signed_request_is_no_longer_dropped(client, alice, signer):
    app, secret = signer
    ar = accepted(signed(client, app, secret, authorization_details=[PAYMENT]))
    assert ar.authorization_details == [STORED_PAYMENT]


def test_a_signed_request_may_carry_the_details_as_json_text(client, alice, signer):
    app, secret = signer
    ar = accepted(signed(client, app, secret, authorization_details=json.dumps([PAYMENT])))
    assert ar.authorization_details == [STORED_PAYMENT]


def test_a_request_without_details_stores_none(client, alice, payer):
    app, secret = payer
    ar = accepted(backchannel(client, app, secret, BASE))
    assert (ar.authorization_details, ar.claims, ar.request_context, ar.resource) == ([], None, None, [])


@pytest.mark.parametrize(
    "details, words",
    [
        ("not json", ""),
        (json.dumps(PAYMENT), ""),  # an object, not an array of objects
        (json.dumps([{"type": "account_information", "actions": ["list_accounts"]}]), "not one this server"),
        (json.dumps([{**PAYMENT, "instructedAmount": {"amount": "twelve", "currency": "EUR"}}]), "amount"),
        (json.dumps([{**PAYMENT, "creditorAccount": {"iban": "DE00 0000"}}]), "iban"),
        (json.dumps([{key: v for key, v in PAYMENT.items() if key != "creditorName"}]), "creditorName"),
        ('[{"type": "payment_initiation", "type": "payment_initiation"}]', ""),
        (json.dumps([{**PAYMENT, "creditorName": "Merchant\u202eA"}]), ""),
        ('[{"type": "payment_initiation", "x": 1e400}]', ""),
        (json.dumps([{**PAYMENT, "creditorName": "Mer\x00chant"}]), ""),
        ('[{"type": "payment_initiation", "creditorName": "\\ud800"}]', ""),
        (json.dumps([PAYMENT] * 11), "10"),
    ],
)
def test_details_the_server_does_not_understand_are_invalid_authorization_details(
    client, alice, payer, details, words
):
    app, secret = payer
    refused(
        backchannel(client, app, secret, {**BASE, "authorization_details": details}),
        400,
        "invalid_authorization_details",
        words,
    )


def test_a_type_the_client_did_not_register_is_refused(client, alice, make_client):
    app, secret = make_client("poll")  # registered for no type
    body = refused(
        backchannel(client, app, secret, {**BASE, "authorization_details": json.dumps([PAYMENT])}),
        400,
        "invalid_authorization_details",
    )
    assert "authorization_details_types" in body["error_description"]


def test_a_payment_in_a_signed_request_is_checked_as_strictly(client, alice, signer):
    app, secret = signer
    refused(
        signed(
            client, app, secret, authorization_details=[{**PAYMENT, "instructedAmount": {"amount": 12.5}}]
        ),
        400,
        "invalid_authorization_details",
    )


def test_details_outside_a_signed_request_are_refused(client, alice, signer):
    app, secret = signer
    token = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1")
    response = backchannel(
        client, app, secret, {"request": token, "authorization_details": json.dumps([PAYMENT])}
    )
    refused(response, 400, "invalid_request", "authorization_details must be inside the JWT")


# --- members of a signed request the server does not implement -----------------------------


@pytest.mark.parametrize("member", ["nonce", "redirect_uri", "response_type", "state", "purpose"])
def test_a_signed_member_the_server_does_not_implement_is_named_and_refused(client, alice, signer, member):
    app, secret = signer
    refused(signed(client, app, secret, **{member: "x"}), 400, "invalid_request", f"not implement: {member}")


def test_a_made_up_signed_member_is_refused_without_being_repeated(client, alice, signer):
    app, secret = signer
    body = refused(signed(client, app, secret, x_pay_more="yes"), 400, "invalid_request", "not implement")
    assert "x_pay_more" not in body["error_description"]


def test_a_client_id_claim_must_be_the_issuer(client, alice, signer):
    app, secret = signer
    accepted(signed(client, app, secret, client_id=app.client_id))
    AuthenticationRequest.objects.all().delete()
    refused(signed(client, app, secret, client_id="someone-else"), 400, "invalid_request", "client_id")


def test_a_lone_surrogate_in_a_signed_text_member_is_refused(client, alice, signer):
    app, secret = signer
    refused(signed(client, app, secret, binding_message="pay \ud800"), 400, "invalid_request", "Unicode")


# --- request_context (CIBA §7.1) --------------------------------------------------------------

CONTEXT = {"location": {"lat": 48.85, "lon": 2.35}, "channel": "kiosk", "terminal": "K-7"}


def test_a_request_context_is_stored_as_sent(client, alice, payer):
    app, secret = payer
    ar = accepted(backchannel(client, app, secret, {**BASE, "request_context": json.dumps(CONTEXT)}))
    assert ar.request_context == CONTEXT


def test_a_signed_request_context_is_stored(client, alice, signer):
    app, secret = signer
    assert accepted(signed(client, app, secret, request_context=CONTEXT)).request_context == CONTEXT


@pytest.mark.parametrize(
    "context, words",
    [
        ("[1, 2]", "JSON object"),
        ('"kiosk"', "JSON object"),
        ("{oops", "not valid JSON"),
        ('{"a": 1, "a": 2}', "not valid JSON"),
        ('{"a": NaN}', "not valid JSON"),
        ('{"a": 1e999}', "not valid JSON"),
        ('{"a": "\\u0000"}', "NUL"),
        ('{"a": "\\udc00"}', "surrogate"),
        (json.dumps({"a": "x" * 5000}), "larger than 4096 bytes"),
        ("[" * 40 + "]" * 40, "nested"),
        ("[" * 1500 + "]" * 1500, "not valid JSON"),
        ('{"a": ' + "9" * 5000 + "}", "larger than"),
    ],
)
def test_a_request_context_that_is_not_a_small_json_object_is_invalid_request(
    client, alice, payer, context, words
):
    app, secret = payer
    with override_settings(CIBA={**settings.CIBA, "REQUEST_CONTEXT_MAX_BYTES": 4096}):
        refused(
            backchannel(client, app, secret, {**BASE, "request_context": context}),
            400,
            "invalid_request",
            words,
        )


def test_a_long_number_within_the_limit_is_refused_not_a_server_error(client, alice, payer):
    """Python refuses to read integers of more than 4,300 digits (a ValueError, not an answer)."""
    app, secret = payer
    with override_settings(CIBA={**settings.CIBA, "REQUEST_CONTEXT_MAX_BYTES": 10_000}):
        context = '{"a": ' + "9" * 5000 + "}"
        refused(
            backchannel(client, app, secret, {**BASE, "request_context": context}), 400, "invalid_request"
        )


#: What the site's validator saw, for the test that installs it.
SEEN: list[dict[str, Any]] = []


def kiosk_context_only(request_context: dict[str, Any], client: Any, user: Any) -> None:
    """A site's rule: a payment context names one of the site's terminals."""
    SEEN.append({"request_context": request_context, "client": client, "user": user})
    if request_context.get("channel") == "kiosk" and not str(request_context.get("terminal", "")).startswith(
        "K-"
    ):
        raise InvalidRequest("request_context: unknown terminal.")


def with_validator():
    return override_settings(
        CIBA={**settings.CIBA, "REQUEST_CONTEXT_VALIDATOR": f"{__name__}.kiosk_context_only"}
    )


def test_the_sites_validator_sees_the_context_the_client_and_the_user(client, alice, payer):
    app, secret = payer
    SEEN.clear()
    with with_validator():
        accepted(backchannel(client, app, secret, {**BASE, "request_context": json.dumps(CONTEXT)}))
    assert SEEN == [{"request_context": CONTEXT, "client": app, "user": alice}]


def test_the_sites_validator_refuses_with_its_own_error(client, alice, payer):
    app, secret = payer
    context = json.dumps({**CONTEXT, "terminal": "X-1"})
    with with_validator():
        refused(
            backchannel(client, app, secret, {**BASE, "request_context": context}),
            400,
            "invalid_request",
            "unknown terminal",
        )


def test_the_sites_validator_is_not_asked_about_a_request_without_context(client, alice, payer):
    app, secret = payer
    SEEN.clear()
    with with_validator():
        accepted(backchannel(client, app, secret, BASE))
    assert SEEN == []


# --- resource (RFC 8707) --------------------------------------------------------------------


def test_resources_may_be_repeated_and_are_stored_in_order(client, alice, payer):
    app, secret = payer
    body = urlencode(
        [
            *BASE.items(),
            ("resource", "https://payments.example.com/"),
            ("resource", "urn:example:ledger"),
            ("resource", "https://payments.example.com/"),
        ]
    )
    ar = accepted(backchannel(client, app, secret, body))
    assert ar.resource == ["https://payments.example.com/", "urn:example:ledger"]


def test_other_parameters_are_still_refused_when_repeated(client, alice, payer):
    app, secret = payer
    body = urlencode([*BASE.items(), ("binding_message", "a"), ("binding_message", "b")])
    refused(backchannel(client, app, secret, body), 400, "invalid_request", "repeated")


@pytest.mark.parametrize(
    "value", ["https://api.example.com/", ["https://a.example/", "https://b.example/x?y=1"]]
)
def test_a_signed_request_names_resources_as_a_string_or_an_array(client, alice, signer, value):
    app, secret = signer
    ar = accepted(signed(client, app, secret, resource=value))
    assert ar.resource == (value if isinstance(value, list) else [value])


@pytest.mark.parametrize(
    "value",
    [
        "https://api.example.com/#section",
        "/relative/path",
        "api.example.com",
        "https://[::1",
        "https://exa mple.com/",
        "https://例え.jp/",
        "",
        "https:",
        "https://" + "a" * 2100,
    ],
)
def test_a_resource_that_is_not_an_absolute_uri_is_invalid_target(client, alice, payer, value):
    app, secret = payer
    refused(backchannel(client, app, secret, {**BASE, "resource": value}), 400, "invalid_target")


def test_too_many_resources_are_invalid_target(client, alice, payer):
    app, secret = payer
    body = urlencode([*BASE.items(), *[("resource", f"https://r{n}.example/") for n in range(17)]])
    refused(backchannel(client, app, secret, body), 400, "invalid_target", "16")


@pytest.mark.parametrize("value", [42, [1], {"uri": "https://a.example/"}, ["https://a.example/", None]])
def test_a_signed_resource_of_the_wrong_type_is_invalid_request(client, alice, signer, value):
    app, secret = signer
    refused(signed(client, app, secret, resource=value), 400, "invalid_request", "resource")


def test_resource_outside_a_signed_request_is_refused(client, alice, signer):
    app, secret = signer
    token = sign(request_object_claims(app.client_id, ISSUER), KEY, "PS256", "k1")
    response = backchannel(client, app, secret, {"request": token, "resource": "https://api.example.com/"})
    refused(response, 400, "invalid_request", "resource must be inside the JWT")


# --- whatever arrives: an answer, never a 500, nothing stored on refusal --------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
member_values = st.one_of(
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.just(json.dumps([PAYMENT])),
    st.just(json.dumps([PAYMENT, PAYMENT])),
    st.just(json.dumps(CONTEXT)),
    st.just("https://api.example.com/"),
    st.just('{"id_token": {"email": null}}'),
    st.integers(0, 5000).map(lambda depth: "[" * depth + "]" * depth),
)
members = st.dictionaries(
    st.sampled_from(["authorization_details", "request_context", "resource", "claims"]),
    member_values,
    max_size=4,
)


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(extra=members)
def test_no_combination_of_these_members_is_a_server_error(client, alice, payer, extra):
    app, secret = payer
    before = AuthenticationRequest.objects.count()
    response = backchannel(client, app, secret, {**BASE, **extra})
    assert response.status_code in (200, 400, 403), response.content[:300]
    if response.status_code != 200:
        oauth_error(response, response.status_code, response.json()["error"])
        assert AuthenticationRequest.objects.count() == before


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    extra=st.dictionaries(
        st.sampled_from(["authorization_details", "request_context", "resource", "claims"]),
        json_values,
        max_size=4,
    )
)
def test_no_signed_combination_of_these_members_is_a_server_error(client, alice, signer, extra):
    app, secret = signer
    before = AuthenticationRequest.objects.count()
    response = signed(client, app, secret, **extra)
    assert response.status_code in (200, 400, 403), response.content[:300]
    if response.status_code != 200:
        oauth_error(response, response.status_code, response.json()["error"])
        assert AuthenticationRequest.objects.count() == before


# --- the rules themselves, without HTTP (docs/architecture.md: one rule per requirement) -----


def test_single_valued_gathers_a_repeatable_parameter_into_one_json_array():
    data = QueryDict("scope=openid&resource=https%3A%2F%2Fa.example%2F&resource=urn%3Ax")
    assert rules.single_valued(data, repeatable=rules.REPEATABLE) == {
        "scope": "openid",
        "resource": '["https://a.example/", "urn:x"]',
    }
    with pytest.raises(InvalidRequest):
        rules.single_valued(data)  # elsewhere (introspection) a repeated resource is still refused
    with pytest.raises(InvalidRequest, match="NUL"):
        rules.single_valued(QueryDict("resource=a&resource=b%00"), repeatable=rules.REPEATABLE)


def test_the_resource_rule_reads_the_json_array_and_drops_repeats():
    assert rules.resources({}) == []
    assert rules.resources({"resource": '["urn:a", "urn:b", "urn:a"]'}) == ["urn:a", "urn:b"]
    for raw in ("urn:a", "[]", '["urn:a", 1]', '{"a": 1}'):
        with pytest.raises(InvalidTarget):
            rules.resources({"resource": raw})


def test_the_claims_rule_keeps_only_what_oidc_core_defines():
    raw = json.dumps({"id_token": {"acr": {"essential": True, "values": ["a"], "purpose": "x"}}, "other": 1})
    assert rules.claims_request({"claims": raw}) == {
        "id_token": {"acr": {"essential": True, "values": ["a"]}}
    }
    assert rules.claims_request({}) is None


def test_a_broken_request_context_validator_path_is_reported_at_start_up():
    """The system check every dotted-path setting gets (``ciba.E007``)."""
    with override_settings(CIBA={**settings.CIBA, "REQUEST_CONTEXT_VALIDATOR": "site.nowhere.validate"}):
        messages = check_ciba_settings()
    assert [m.id for m in messages if "REQUEST_CONTEXT_VALIDATOR" in m.msg] == ["ciba.E007"]
