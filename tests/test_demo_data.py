"""`manage.py ciba_demo_data`: the demo's users, clients, phones and tokens, idempotently."""

import json
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest, SigningKey
from example_project import env
from tests.conftest import basic_auth
from tests.keys import assertion_claims, request_object_claims, sign
from tests.protocol import BACKCHANNEL, FORM, TOKEN


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


# --- running it again beside a running demo ---------------------------------------------------

#: What ./scripts/demo runs when it starts with PORT=8123.
DEMO_START = ("--rotate", "--notification-base-url", "http://127.0.0.1:8123/demo/callbacks")


@pytest.fixture
def kiosk_file(settings, tmp_path, monkeypatch) -> Path:
    """The kiosk's credentials file of this test alone; no PORT in the environment, as in a
    second terminal where someone pastes the guide's recipe."""
    monkeypatch.delenv("PORT", raising=False)
    settings.CIBA_DEMO_CLIENTS_FILE = str(tmp_path / "demo_clients.json")
    return tmp_path / "demo_clients.json"


def run(*args: str) -> dict:
    out = StringIO()
    call_command("ciba_demo_data", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def kiosk_credentials(path: Path) -> dict:
    return json.loads(path.read_text())["clients"]


def authenticates(client, credentials: dict) -> bool:
    """Whether the backchannel endpoint accepts these credentials, as the kiosk presents them."""
    response = client.post(
        BACKCHANNEL,
        "scope=openid&login_hint=alice&client_notification_token=" + "t" * 32,
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(credentials["client_id"], credentials["client_secret"]),
    )
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def test_the_guides_recipe_beside_a_running_demo_keeps_what_the_kiosk_uses(db, client, kiosk_file):
    started = run(*DEMO_START)
    kiosk_then = kiosk_credentials(kiosk_file)

    again = run()  # the recipe: ciba_demo_data --json, for a consent token

    # The secrets the running kiosk holds still work, and the file still holds them.
    assert kiosk_credentials(kiosk_file) == kiosk_then
    for mode, credentials in kiosk_then.items():
        assert again["clients"][mode]["client_secret"] == started["clients"][mode]["client_secret"]
        assert credentials["token_endpoint_auth_method"] == "client_secret_basic"
        assert authenticates(client, credentials)
    # The ping and push clients are still called back on the demo's port, not on 8000.
    assert again["clients"]["ping"]["notification_endpoint"] == "http://127.0.0.1:8123/demo/callbacks/ping/"
    assert again["clients"]["push"]["notification_endpoint"] == "http://127.0.0.1:8123/demo/callbacks/push/"
    app = get_application_model().objects.get(client_id="demo-push")
    assert app.backchannel_client_notification_endpoint == "http://127.0.0.1:8123/demo/callbacks/push/"
    # Passwords are kept (and, stored hashed, not printed); the recipe's token is new and works.
    assert again["users"]["alice"]["password"] is None and again["users"]["admin"]["password"] is None
    assert client.login(username="alice", password=started["users"]["alice"]["password"])
    token = again["users"]["alice"]["consent_token"]
    assert client.get("/o/ciba/requests/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_the_printed_output_says_passwords_are_kept_and_how_to_get_new_ones(db, kiosk_file):
    run(*DEMO_START)
    out = StringIO()
    call_command("ciba_demo_data", stdout=out)
    assert "alice  / (password unchanged; --rotate sets new ones)" in out.getvalue()


def test_rotate_issues_new_secrets_and_passwords_and_rewrites_the_kiosk_file(db, client, kiosk_file):
    first = run(*DEMO_START)
    second = run("--rotate")

    for mode, credentials in kiosk_credentials(kiosk_file).items():
        assert credentials["client_secret"] == second["clients"][mode]["client_secret"]
        assert credentials["client_secret"] != first["clients"][mode]["client_secret"]
        assert authenticates(client, credentials)
        assert not authenticates(client, first["clients"][mode])
    assert not client.login(username="bob", password=first["users"]["bob"]["password"])
    assert client.login(username="bob", password=second["users"]["bob"]["password"])
    # --rotate alone changes no endpoint either.
    assert second["clients"]["ping"]["notification_endpoint"] == "http://127.0.0.1:8123/demo/callbacks/ping/"


def test_a_kiosk_file_that_no_longer_matches_gets_new_secrets_that_work(db, client, kiosk_file):
    run(*DEMO_START)
    stale = kiosk_credentials(kiosk_file)
    stale["poll"]["client_secret"] = "not-the-stored-secret"
    kiosk_file.write_text(json.dumps({"clients": stale}))

    again = run()

    poll = kiosk_credentials(kiosk_file)["poll"]
    assert poll["client_secret"] == again["clients"]["poll"]["client_secret"] != "not-the-stored-secret"
    assert authenticates(client, poll)


def test_a_given_notification_base_url_re_points_the_callbacks(db, kiosk_file):
    run(*DEMO_START)
    moved = run("--notification-base-url", "http://127.0.0.1:8124/demo/callbacks/")
    assert moved["clients"]["ping"]["notification_endpoint"] == "http://127.0.0.1:8124/demo/callbacks/ping/"
    assert moved["clients"]["poll"]["notification_endpoint"] is None


def test_new_clients_are_called_back_on_the_port_of_the_demo(db, kiosk_file, monkeypatch):
    monkeypatch.setenv("PORT", "8125")
    data = run()
    assert data["clients"]["push"]["notification_endpoint"] == "http://127.0.0.1:8125/demo/callbacks/push/"
    assert data["users"]["alice"]["password"]  # new users get a password, printed once


def test_the_demo_phone_app_is_a_valid_native_app_registration_under_the_examples_rules(db, settings):
    # The example's ALLOWED_REDIRECT_URI_SCHEMES (https only, as RFC 9700 §2.1 wants, and the
    # phone app's private-use scheme).
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "org.example.ciba-demo"],
    }
    demo_data()
    phone = get_application_model().objects.get(client_id="demo-phone")
    phone.full_clean()
    assert phone.redirect_uris == "org.example.ciba-demo:/signed-in"


# --- the FAPI-CIBA demo client (--fapi) --------------------------------------------------------

#: The certificate headers nginx sets (docs/nginx-mtls.md), believed from 127.0.0.1 only.
MTLS = {
    "TRUSTED_PROXIES": ["127.0.0.1/32"],
    "MTLS_CERT_HEADER": "HTTP_X_SSL_CLIENT_CERT",
    "MTLS_CERT_HEADER_FORMAT": "escaped-pem",
    "MTLS_CERT_VERIFY_HEADER": "HTTP_X_SSL_CLIENT_VERIFY",
}
ISSUER = "http://testserver/o"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FAPI_METHODS = ["tls_client_auth", "private_key_jwt", "self_signed_tls_client_auth"]


@pytest.fixture
def fapi_server(settings):
    """The profile as the example runs it with CIBA_PROFILE=fapi-ciba, behind nginx."""
    settings.CIBA = {**settings.CIBA, **MTLS, **env.FAPI_CIBA}


def fapi_demo(out, *args: str) -> dict:
    stdout = StringIO()
    call_command("ciba_demo_data", "--json", "--fapi", "--out", str(out), *args, stdout=stdout)
    return json.loads(stdout.getvalue())


def fapi_app():
    return get_application_model().objects.get(client_id="demo-fapi")


def private_key(path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def certificate(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@pytest.mark.parametrize("method", FAPI_METHODS)
def test_the_fapi_client_is_a_valid_fapi_ciba_registration_with_its_credentials_written(
    db, fapi_server, tmp_path, method
):
    client = fapi_demo(tmp_path / "creds", "--fapi-auth", method)["fapi_client"]

    app = fapi_app()
    app.full_clean()
    assert app.profile_problems() == [] and app.is_ciba_client
    assert app.token_endpoint_auth_method == method == client["token_endpoint_auth_method"]
    assert app.backchannel_token_delivery_mode == "poll"
    assert app.backchannel_authentication_request_signing_alg == app.id_token_signed_response_alg == "PS256"
    assert app.tls_client_certificate_bound_access_tokens and not app.dpop_bound_access_tokens
    assert app.token_endpoint_auth_signing_alg == ("PS256" if method == "private_key_jwt" else "")
    # The written files: the key's public half is the registered JWK and the certificate's key.
    files = client["files"]
    key, cert = private_key(files["private_key"]), certificate(files["certificate"])
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert json.loads(Path(files["jwks"]).read_text()) == app.jwks
    (jwk,) = app.jwks["keys"]
    assert jwt.PyJWK(jwk).key.public_numbers() == key.public_key().public_numbers()
    assert jwk["kid"] == client["kid"] and "d" not in jwk
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    written = json.loads(Path(files["client_json"]).read_text())
    assert written["client_id"] == "demo-fapi" and written["files"]["private_key"] == files["private_key"]
    assert "PRIVATE KEY" not in json.dumps(client) + json.dumps(written)
    for secret in ("private_key", "ca_private_key"):
        if secret in files:
            assert Path(files[secret]).stat().st_mode & 0o777 == 0o600
    if method == "self_signed_tls_client_auth":
        assert cert.issuer == cert.subject and "ca_certificate" not in files
        cert.verify_directly_issued_by(cert)
    else:
        ca = certificate(files["ca_certificate"])
        cert.verify_directly_issued_by(ca)
        assert private_key(files["ca_private_key"]).public_key() == ca.public_key()
    if method == "tls_client_auth":
        assert cert.subject.rfc4514_string() == app.tls_client_auth_subject_dn
        assert x509.Name.from_rfc4514_string(app.tls_client_auth_subject_dn) == cert.subject
    else:
        assert app.tls_client_auth_subject_dn == ""
    # PS256 ID tokens need an active RSA key of the server's key set.
    assert SigningKey.objects.filter(kty="RSA", state="active").count() == 1


def test_running_it_again_keeps_the_fapi_client_and_its_ca_but_issues_a_new_key(db, fapi_server, tmp_path):
    first = fapi_demo(tmp_path)["fapi_client"]
    ca_pem = Path(first["files"]["ca_certificate"]).read_bytes()
    pk = fapi_app().pk
    second = fapi_demo(tmp_path)["fapi_client"]

    assert fapi_app().pk == pk and second["client_id"] == first["client_id"] == "demo-fapi"
    assert second["kid"] != first["kid"] and fapi_app().jwks["keys"][0]["kid"] == second["kid"]
    assert second["ca_reused"] and Path(second["files"]["ca_certificate"]).read_bytes() == ca_pem
    assert second["tls_client_auth_subject_dn"] == first["tls_client_auth_subject_dn"]
    assert SigningKey.objects.filter(kty="RSA").count() == 1
    # Switching the method on a later run updates the same row to a valid registration.
    fapi_demo(tmp_path, "--fapi-auth", "self_signed_tls_client_auth")
    app = fapi_app()
    app.full_clean()
    assert app.pk == pk and app.tls_client_auth_subject_dn == "" and app.profile_problems() == []


def test_the_fapi_client_is_made_only_when_asked_for_or_when_the_profile_is_on(db, settings, tmp_path):
    settings.CIBA_DEMO_CLIENTS_FILE = str(tmp_path / "demo_clients.json")
    data = demo_data()
    assert "fapi_client" not in data and not get_application_model().objects.filter(client_id="demo-fapi")

    settings.CIBA = {**settings.CIBA, **env.FAPI_CIBA}
    out = StringIO()
    call_command("ciba_demo_data", stdout=out)
    printed = out.getvalue()
    # Implied by the profile, written beside the kiosk's credentials; no private key printed.
    assert (tmp_path / "demo-fapi" / "client.key").exists() and str(tmp_path / "demo-fapi") in printed
    assert "demo-fapi" in printed and "tls_client_auth" in printed and "PRIVATE KEY" not in printed
    # The profile allows no client secrets: the kiosk's clients are not made.
    assert json.loads((tmp_path / "demo_clients.json").read_text()) == {"clients": {}}


@pytest.mark.parametrize("method", FAPI_METHODS)
def test_the_fapi_demo_client_gets_ps256_id_tokens_with_its_written_credentials(
    db, fapi_server, client, tmp_path, method
):
    demo = fapi_demo(tmp_path, "--fapi-auth", method)["fapi_client"]
    files = demo["files"]
    key, kid = private_key(files["private_key"]), demo["kid"]
    verdict = "FAILED:self-signed certificate" if method == "self_signed_tls_client_auth" else "SUCCESS"
    tls = {
        "HTTP_X_SSL_CLIENT_CERT": quote(Path(files["certificate"]).read_text(), safe=""),
        "HTTP_X_SSL_CLIENT_VERIFY": verdict,
    }

    def post(path: str, params: dict) -> Any:
        if method == "private_key_jwt":
            assertion = sign(assertion_claims("demo-fapi", ISSUER), key, "PS256", kid)
            params = {**params, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        else:
            params = {"client_id": "demo-fapi", **params}
        return client.post(path, urlencode(params), content_type=FORM, **tls)

    claims = request_object_claims("demo-fapi", ISSUER, binding_message="Pay EUR 12.50")
    response = post(BACKCHANNEL, {"request": sign(claims, key, "PS256", kid)})
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    ar = AuthenticationRequest.objects.get(auth_req_id=auth_req_id)
    services.approve(ar, user=ar.user)
    response = post(TOKEN, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id})

    assert response.status_code == 200, response.content
    body = response.json()
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "PS256"
    published = client.get("/o/.well-known/jwks.json").json()["keys"]
    server_key = jwt.PyJWK(next(k for k in published if k["kid"] == header["kid"]), algorithm="PS256")
    id_claims = jwt.decode(body["id_token"], server_key, algorithms=["PS256"], audience="demo-fapi")
    assert id_claims["iss"] == ISSUER
    # The access token is bound to the written certificate: without it, it is refused.
    bearer_only = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert bearer_only.status_code == 401
    with_cert = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}", **tls)
    assert with_cert.status_code == 200, with_cert.content
