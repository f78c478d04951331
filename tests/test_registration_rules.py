"""``ciba.registration_rules``: the one list of a client's registration problems, and its readers."""

import pytest
from django.core import checks
from django.core.exceptions import ValidationError
from oauth2_provider.models import get_application_model

from ciba import registration_rules
from ciba.registration_rules import Problem, problems
from tests.test_client_registration import ciba_client

Application = get_application_model()

FAPI = {"PROFILE": "fapi-ciba", "DELIVERY_MODES": ["poll", "ping"]}


def unsaved(**fields):
    return ciba_client(**fields)  # a registration as the model tests start it, never saved


def codes(client, **kwargs):
    return [problem.code for problem in problems(client, **kwargs)]


def database_messages(code):
    return [m for m in checks.run_checks(tags=[checks.Tags.database], databases=["default"]) if m.id == code]


def test_a_sound_unsaved_client_has_no_problems_and_needs_no_database():
    assert codes(unsaved()) == []


def test_each_problem_names_its_field_a_stable_code_and_whether_it_blocks_use():
    client = unsaved(client_type=Application.CLIENT_PUBLIC, backchannel_user_code_parameter=True)
    found = {problem.code: problem for problem in problems(client)}
    assert found["not_confidential"] == Problem(
        "client_type",
        "not_confidential",
        found["not_confidential"].message,
        blocking=True,
        said_to_client="it is not a confidential client",
    )
    assert found["user_code_unsupported"].field == "backchannel_user_code_parameter"
    assert not found["user_code_unsupported"].blocking and not found["user_code_unsupported"].by_profile


def test_clean_refuses_exactly_the_registration_problems_at_their_fields(db):
    client = unsaved(
        backchannel_token_delivery_mode="ping",
        token_endpoint_auth_method="private_key_jwt",
        backchannel_authentication_request_signing_alg="HS256",
    )
    with pytest.raises(ValidationError) as exc:
        client.clean()
    expected = {}
    for problem in problems(client):
        expected.setdefault(problem.field, []).append(str(problem.message))
    assert {
        field: [str(m) for m in messages] for field, messages in exc.value.message_dict.items()
    } == expected
    assert registration_rules.registration_errors(client).keys() == expected.keys()


def test_blocking_only_evaluates_what_the_endpoints_ask_and_the_mixin_reads_it(settings):
    settings.CIBA = {**settings.CIBA, **FAPI}
    client = unsaved(backchannel_token_delivery_mode="push", client_type=Application.CLIENT_PUBLIC)
    blocking = list(problems(client, blocking_only=True))
    assert blocking == [problem for problem in problems(client) if problem.blocking]
    assert client.ciba_problems() == [problem.refusal for problem in blocking]
    assert client.profile_problems() == [(p.field, p.message) for p in blocking if p.by_profile]
    assert "fapi_push_mode" in codes(client, blocking_only=True) and not client.is_ciba_client


def test_a_client_without_a_delivery_mode_has_no_ciba_problems():
    device_app = unsaved(
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        backchannel_token_delivery_mode="",
        client_type=Application.CLIENT_PUBLIC,
        algorithm="",
    )
    assert codes(device_app) == [] and device_app.ciba_problems() == []
    assert codes(unsaved(backchannel_token_delivery_mode="")) == ["delivery_mode_missing"]


def test_a_hashed_secret_under_hs256_blocks_use_without_being_a_registration_error():
    from django.contrib.auth.hashers import make_password

    client = unsaved(algorithm="HS256", hash_client_secret=False, client_secret=make_password("s" * 40))
    (problem,) = problems(client)
    assert problem.code == "hs256_secret_unavailable" and problem.blocking and not problem.registration
    assert registration_rules.registration_errors(client) == {}
    assert client.ciba_problems() == ["HS256 ID tokens need its client secret stored unhashed"]


def test_the_admins_choices_and_hints_come_from_the_rules(settings):
    assert registration_rules.profile_hints() == {}
    assert registration_rules.allowed_choices() == {
        "backchannel_token_delivery_mode": list(settings.CIBA.get("DELIVERY_MODES", ["poll", "ping", "push"]))
    }
    settings.CIBA = {**settings.CIBA, **FAPI}
    hints = registration_rules.profile_hints()
    assert set(hints) == set(registration_rules.FAPI_RULES)
    assert registration_rules.allowed_choices()["id_token_signed_response_alg"] == ["PS256", "ES256"]
    assert registration_rules.allowed_choices()["backchannel_token_delivery_mode"] == ["poll", "ping"]


def test_the_system_checks_tell_problems_apart_by_code_not_by_their_words(make_client, settings, monkeypatch):
    pusher, _ = make_client("push")
    settings.CIBA = {**settings.CIBA, **FAPI}
    rule = registration_rules.FAPI_RULES["backchannel_token_delivery_mode"]
    monkeypatch.setitem(
        registration_rules.FAPI_RULES,
        "backchannel_token_delivery_mode",
        rule._replace(reason="Reworded: no push"),
    )
    (error,) = database_messages("ciba.E032")
    assert f"{pusher.client_id}: " in error.msg and "Reworded: no push" in error.msg
    # The mode the profile forbids is not reported again as unsupported by this server.
    assert database_messages("ciba.W005") == []
