"""Several grants per client (RFC 7591 ``grant_types``): what DOT's endpoints let a client do,
which clients get refresh tokens, the registration rules, the command and the admin form."""

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from oauth2_provider.models import get_application_model, get_refresh_token_model

from ciba import registration_rules
from ciba.constants import CIBA_GRANT_TYPE, RT_HASH_CLAIM
from tests.conftest import basic_auth, start_request
from tests.test_token_grant import approve, poll

Application = get_application_model()
RefreshToken = get_refresh_token_model()
FORM = "application/x-www-form-urlencoded"
REDIRECT = "https://client.example.com/cb"


def token_request(client, app, secret, **params):
    return client.post(
        "/o/token/",
        urlencode(params),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def ciba_tokens(client, app, secret):
    auth_req_id = start_request(client, app, secret)
    approve(auth_req_id)
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return response.json()


def codes(app):
    return {problem.code for problem in registration_rules.problems(app)}


# --- the UK / Brazil pattern: client_credentials to lodge a consent, CIBA to approve it ----------


def test_one_client_uses_client_credentials_and_ciba_at_dots_token_endpoint(client, alice, make_client):
    app, secret = make_client("poll", grant_types=["client_credentials", CIBA_GRANT_TYPE])

    response = token_request(client, app, secret, grant_type="client_credentials", scope="payments")
    assert response.status_code == 200, response.content
    own = response.json()
    assert own["scope"] == "payments" and "refresh_token" not in own

    tokens = ciba_tokens(client, app, secret)
    assert {"access_token", "id_token"} <= set(tokens)
    assert app.authorization_grant_type == CIBA_GRANT_TYPE
    assert app.registered_grant_types == ("client_credentials", CIBA_GRANT_TYPE)


def test_a_client_without_refresh_token_gets_no_refresh_token(client, alice, make_client):
    app, secret = make_client("poll", grant_types=[CIBA_GRANT_TYPE])
    tokens = ciba_tokens(client, app, secret)
    assert "refresh_token" not in tokens
    assert not RefreshToken.objects.exists()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert RT_HASH_CLAIM not in claims  # no hash of a token never issued


def test_a_client_listing_refresh_token_gets_one_and_refreshes(client, alice, make_client):
    app, secret = make_client("poll", grant_types=[CIBA_GRANT_TYPE, "refresh_token"])
    tokens = ciba_tokens(client, app, secret)
    assert "refresh_token" in tokens
    response = token_request(
        client, app, secret, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert response.status_code == 200, response.content


def test_dropping_refresh_token_from_the_grant_types_stops_refreshing(client, alice, make_client):
    app, secret = make_client("poll", grant_types=[CIBA_GRANT_TYPE, "refresh_token"])
    refresh_token = ciba_tokens(client, app, secret)["refresh_token"]
    Application.objects.filter(pk=app.pk).update(grant_types=[CIBA_GRANT_TYPE])
    response = token_request(client, app, secret, grant_type="refresh_token", refresh_token=refresh_token)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_client_credentials_is_refused_unless_listed(client, alice, make_client):
    app, secret = make_client("poll", grant_types=[CIBA_GRANT_TYPE, "refresh_token"])
    response = token_request(client, app, secret, grant_type="client_credentials", scope="payments")
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_a_push_client_listing_the_ciba_grant_still_cannot_poll(client, alice, make_client):
    app, secret = make_client("push", grant_types=[CIBA_GRANT_TYPE, "client_credentials"])
    assert not app.allows_grant_type(CIBA_GRANT_TYPE)
    assert app.allows_grant_type("client_credentials")


def test_a_broken_ciba_registration_is_refused_ciba_and_refresh_but_not_its_other_grants(make_client):
    app, _ = make_client("poll", grant_types=[CIBA_GRANT_TYPE, "client_credentials", "refresh_token"])
    app.algorithm, app.id_token_signed_response_alg = "", ""  # no way to sign ID tokens: blocking
    assert not app.is_ciba_client
    assert not app.allows_grant_type(CIBA_GRANT_TYPE) and not app.allows_grant_type("refresh_token")
    assert app.allows_grant_type("client_credentials")


# --- authorization_code, at DOT's authorization and token endpoints -----------------------------


def authorize(client, app, verifier):
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = urlencode(
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "xyz",
        }
    )
    return client.get(f"/o/authorize/?{query}")


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def code_flow_client(make_client, grant_types, mode="poll"):
    return make_client(mode, grant_types=grant_types, redirect_uris=REDIRECT, skip_authorization=True)


@pytest.mark.parametrize("refresh", [True, False])
def test_authorization_code_works_when_listed_and_refresh_follows_the_list(signed_in, make_client, refresh):
    grant_types = [CIBA_GRANT_TYPE, "authorization_code"] + (["refresh_token"] if refresh else [])
    app, secret = code_flow_client(make_client, grant_types)
    verifier = secrets.token_urlsafe(48)
    response = authorize(signed_in, app, verifier)
    assert response.status_code == 302, response.content
    location = urlparse(response["Location"])
    code = parse_qs(location.query)["code"][0]

    response = token_request(
        signed_in,
        app,
        secret,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.content
    tokens = response.json()
    assert "id_token" in tokens
    assert ("refresh_token" in tokens) is refresh
    assert RefreshToken.objects.filter(application=app).exists() is refresh


def test_authorization_code_is_refused_unless_listed(signed_in, make_client):
    app, _ = code_flow_client(make_client, [CIBA_GRANT_TYPE, "refresh_token"])
    response = authorize(signed_in, app, secrets.token_urlsafe(48))
    assert response.status_code == 302
    assert parse_qs(urlparse(response["Location"]).query)["error"] == ["unauthorized_client"]


def test_a_client_of_authorization_code_alone_is_no_ciba_client(make_client):
    app, _ = make_client(
        "",
        grant_types=["authorization_code"],
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT,
    )
    assert not app.registers_ciba and not app.allows_grant_type(CIBA_GRANT_TYPE)
    assert app.allows_grant_type(Application.GRANT_AUTHORIZATION_CODE)
    assert not app.issues_refresh_tokens


# --- rows older than grant_types behave as before -----------------------------------------------


def test_a_legacy_ciba_row_keeps_the_ciba_and_refresh_grants_and_nothing_else(client, alice, make_client):
    app, secret = make_client("poll")
    assert app.grant_types == []
    assert app.registered_grant_types == (CIBA_GRANT_TYPE, "refresh_token")
    tokens = ciba_tokens(client, app, secret)
    assert "refresh_token" in tokens
    response = token_request(
        client, app, secret, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert response.status_code == 200, response.content
    response = token_request(client, app, secret, grant_type="client_credentials", scope="payments")
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_a_legacy_dot_row_keeps_its_single_grant_and_refresh(db):
    app = Application(
        name="web",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT,
    )
    assert app.registered_grant_types == ("authorization_code", "refresh_token")
    assert app.allows_grant_type(Application.GRANT_AUTHORIZATION_CODE)
    assert not app.allows_grant_type(Application.GRANT_CLIENT_CREDENTIALS)
    assert app.issues_refresh_tokens


# --- the registration rules ---------------------------------------------------------------------


def unsaved(**fields):
    values = {
        "name": "k",
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": CIBA_GRANT_TYPE,
        "backchannel_token_delivery_mode": "poll",
        "algorithm": "RS256",
        "client_secret": secrets.token_urlsafe(32),
    }
    values.update(fields)
    return Application(**values)


@pytest.mark.parametrize(
    "grant_types",
    [
        ["password", CIBA_GRANT_TYPE],
        ["implicit"],
        [CIBA_GRANT_TYPE, CIBA_GRANT_TYPE],
        "urn:openid:params:grant-type:ciba",
        [42],
    ],
)
def test_unknown_or_malformed_grant_types_are_refused_and_allow_nothing(db, grant_types):
    app = unsaved(grant_types=grant_types)
    assert "grant_types_invalid" in codes(app)
    assert app.registered_grant_types == ()
    assert not app.allows_grant_type(CIBA_GRANT_TYPE) and not app.is_ciba_client


def test_the_ciba_grant_needs_a_delivery_mode(db):
    app = unsaved(grant_types=[CIBA_GRANT_TYPE], backchannel_token_delivery_mode="")
    problem = next(p for p in registration_rules.problems(app) if p.code == "grant_types_ciba_without_mode")
    assert problem.field == "backchannel_token_delivery_mode"


def test_a_delivery_mode_needs_the_ciba_grant_and_blocks_without_it(client, alice, make_client):
    app, secret = make_client("poll")
    Application.objects.filter(pk=app.pk).update(grant_types=["client_credentials"])
    app.refresh_from_db()
    problem = next(p for p in registration_rules.problems(app) if p.code == "grant_types_mode_without_ciba")
    assert problem.field == "grant_types" and problem.blocking
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_refresh_token_needs_a_grant_that_issues_refresh_tokens(db):
    app = unsaved(
        grant_types=["client_credentials", "refresh_token"],
        backchannel_token_delivery_mode="",
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    assert "grant_types_refresh_without_grant" in codes(app)
    assert "grant_types_refresh_without_grant" in codes(unsaved(grant_types=["refresh_token"]))


def test_authorization_code_needs_redirect_uris(db):
    app = unsaved(grant_types=[CIBA_GRANT_TYPE, "authorization_code"])
    problem = next(
        p for p in registration_rules.problems(app) if p.code == "grant_types_redirect_uris_missing"
    )
    assert problem.field == "redirect_uris"
    assert "grant_types_redirect_uris_missing" not in codes(
        unsaved(grant_types=[CIBA_GRANT_TYPE, "authorization_code"], redirect_uris=REDIRECT)
    )


def test_client_credentials_needs_a_confidential_client(db):
    app = unsaved(
        grant_types=["client_credentials"],
        backchannel_token_delivery_mode="",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    assert "grant_types_client_credentials_public" in codes(app)


def test_the_single_grant_column_must_follow_the_grant_types(db):
    app = unsaved(
        grant_types=[CIBA_GRANT_TYPE], authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS
    )
    assert "grant_types_primary_mismatch" in codes(app)
    assert registration_rules.dot_grant_type(["client_credentials", CIBA_GRANT_TYPE]) == CIBA_GRANT_TYPE
    assert (
        registration_rules.dot_grant_type(["authorization_code", "client_credentials"])
        == "authorization-code"
    )
    assert registration_rules.dot_grant_type(["refresh_token"]) == ""


def test_clean_refuses_grant_type_problems_at_their_fields(db):
    app = unsaved(grant_types=["password"])
    with pytest.raises(Exception) as caught:
        app.full_clean()
    assert "grant_types" in caught.value.message_dict


# --- manage.py ciba_client ----------------------------------------------------------------------


def test_the_command_takes_grant_types_and_contacts_on_the_command_line(db, capsys):
    call_command(
        "ciba_client",
        "Bank app",
        "--grant-types",
        "client_credentials",
        CIBA_GRANT_TYPE,
        "--contacts",
        "ops@bank.example, dev@bank.example",
    )
    app = Application.objects.get(name="Bank app")
    assert app.grant_types == ["client_credentials", CIBA_GRANT_TYPE]
    assert app.contacts == ["ops@bank.example", "dev@bank.example"]
    out = capsys.readouterr().out
    assert f"grant_types: client_credentials {CIBA_GRANT_TYPE}" in out

    call_command(
        "ciba_client", "--client-id", app.client_id, "--grant-types", f"{CIBA_GRANT_TYPE},refresh_token"
    )
    app.refresh_from_db()
    assert app.grant_types == [CIBA_GRANT_TYPE, "refresh_token"]
    call_command("ciba_client", "--client-id", app.client_id, "--grant-types")
    app.refresh_from_db()
    assert app.grant_types == []  # back to the single grant


def test_the_command_refuses_unknown_grant_types_naming_the_option(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--grant-types"):
        call_command("ciba_client", "Bank app", "--grant-types", "password")
    assert not Application.objects.exists()


# --- the admin form -----------------------------------------------------------------------------


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def admin_form(**overrides):
    data = {
        "name": "Bank app",
        "client_id": "bank-1",
        "client_secret": "a-long-enough-client-secret",
        "hash_client_secret": "on",
        "client_type": "confidential",
        "authorization_grant_type": "",
        "algorithm": "RS256",
        "backchannel_token_delivery_mode": "poll",
        "backchannel_client_notification_endpoint": "",
        "token_endpoint_auth_method": "client_secret_basic",
        "backchannel_authentication_request_signing_alg": "",
        "jwks": "",
        "jwks_uri": "",
        "redirect_uris": "",
        "post_logout_redirect_uris": "",
        "allowed_origins": "",
        "contacts": "",
    }
    data.update(overrides)
    return data


def test_the_admin_lists_several_grants_and_sets_the_single_grant_from_them(staff):
    page = staff.get("/admin/ciba/application/add/").content.decode()
    assert 'type="checkbox" name="grant_types"' in page and 'value="client_credentials"' in page

    data = admin_form(contacts="ops@bank.example\ndev@bank.example")
    data_list = list(data.items()) + [("grant_types", CIBA_GRANT_TYPE), ("grant_types", "client_credentials")]
    response = staff.post("/admin/ciba/application/add/", urlencode(data_list), content_type=FORM)
    assert response.status_code == 302, response.context["adminform"].form.errors
    app = Application.objects.get(client_id="bank-1")
    assert app.grant_types == [CIBA_GRANT_TYPE, "client_credentials"]
    assert app.authorization_grant_type == CIBA_GRANT_TYPE
    assert app.contacts == ["ops@bank.example", "dev@bank.example"]
    changelist = staff.get("/admin/ciba/application/").content.decode()
    assert f"{CIBA_GRANT_TYPE} client_credentials" in changelist


def test_the_admin_refuses_inconsistent_grant_types_next_to_the_field(staff):
    data_list = list(admin_form(backchannel_token_delivery_mode="").items()) + [
        ("grant_types", "refresh_token")
    ]
    response = staff.post("/admin/ciba/application/add/", urlencode(data_list), content_type=FORM)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "refresh_token needs a grant that issues refresh tokens" in " ".join(errors["grant_types"])
    assert not Application.objects.exists()


def test_the_admin_without_grant_types_keeps_the_single_grant_choice(staff):
    response = staff.post(
        "/admin/ciba/application/add/", admin_form(authorization_grant_type=CIBA_GRANT_TYPE)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    app = Application.objects.get(client_id="bank-1")
    assert app.grant_types == [] and app.authorization_grant_type == CIBA_GRANT_TYPE
    response = staff.post("/admin/ciba/application/add/", admin_form(client_id="bank-2"))
    assert "authorization_grant_type" in response.context["adminform"].form.errors


def test_a_stored_grant_type_no_longer_offered_shows_marked_and_saving_names_the_rule(staff, make_client):
    app, _ = make_client("poll")
    Application.objects.filter(pk=app.pk).update(grant_types=[CIBA_GRANT_TYPE, "password"])
    url = f"/admin/ciba/application/{app.pk}/change/"
    form = staff.get(url).context["adminform"].form
    assert ("password", "password (not offered by this server)") in form.fields["grant_types"].choices
    assert form["grant_types"].value() == [CIBA_GRANT_TYPE, "password"]

    data = admin_form(client_id=app.client_id, client_secret="", authorization_grant_type=CIBA_GRANT_TYPE)
    data_list = list(data.items()) + [("grant_types", CIBA_GRANT_TYPE), ("grant_types", "password")]
    response = staff.post(url, urlencode(data_list), content_type=FORM)
    assert response.status_code == 200
    assert "grant_types must be a list without repeats of" in " ".join(
        response.context["adminform"].form.errors["grant_types"]
    )
    app.refresh_from_db()
    assert app.grant_types == [CIBA_GRANT_TYPE, "password"]
