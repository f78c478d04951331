"""The plan's ``client_registration=dynamic_client`` variant, and the suite's registration negatives.

With ``dynamic_client`` the suite registers both of its clients itself
(``AbstractFAPICIBAID1.registerClient``) instead of reading them from its configuration, using
the ``initial_access_token`` configured for each, and deletes them when the module ends
(``unregisterClient1``/``unregisterClient2``). Its request, condition by condition:

* ``CreateEmptyDynamicRegistrationRequest``, ``AddClientNameToDynamicRegistrationRequest``
  (the configured name and the test's id);
* ``GeneratePS256ClientJWKsWithKeyID`` (RSA, ``use=sig``, ``alg=PS256``, ``kid`` the RFC 7638
  thumbprint), ``GenerateMTLSCertificateFromJWKs`` (a self-signed certificate for that key,
  ``cn=<client name>``, CA=true) and ``AddClientX509CertificateClaimToPublicJWKs`` (``x5c``);
* ``grant_types`` ``[urn:openid:params:grant-type:ciba]`` (plus ``client_credentials`` for
  ``openbanking_uk``), ``jwks``, ``backchannel_user_code_parameter: false``, the delivery mode
  (and ``backchannel_client_notification_endpoint`` for ping),
  ``backchannel_authentication_request_signing_alg`` and ``id_token_signed_response_alg`` PS256,
  ``response_types: []``, ``tls_client_certificate_bound_access_tokens: true``;
* ``token_endpoint_auth_method``: ``private_key_jwt`` with ``token_endpoint_auth_signing_alg``
  PS256, or (``client_auth_type=mtls``) ``self_signed_tls_client_auth``.

``CallDynamicRegistrationEndpointAndVerifySuccessfulResponse`` then checks: a JSON 201 with no
``error``, a ``client_id``, ``registration_client_uri`` and ``registration_access_token`` both
or neither, and ``client_secret_expires_at`` beside any ``client_secret``. The flows after it
are the static variant's (``test_happy_paths.py``) with the registered clients, and
``UnregisterDynamicallyRegisteredClient`` expects 204 from DELETE.

The FAPI-CIBA plan has no negative registration module of its own; the suite's are the Brazil
DCR modules of the FAPI 1 Advanced plan (``FAPI1AdvancedFinalBrazilDCR*``), mirrored below
without the Brazilian directory (a test directory key signs the software statements): client
deletion, an invalid registration access token, an update (RFC 7592 PUT of the registration
response), a missing or bad redirect URI, an invalid software statement signature, and a
registration without the required software statement.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from oauth2_provider.models import get_access_token_model, get_application_model

from ciba.client_registration import initial_access_tokens
from ciba.constants import CIBA_GRANT_TYPE
from ciba.models import AuthenticationRequest
from tests.conformance.conftest import ISSUER, Suite
from tests.integration.tls import Credential, presenting
from tests.keys import rsa_key

Application = get_application_model()

REGISTER = "/o/register/"
JSON = "application/json"
#: The suite's ``client.client_name`` / ``client2.client_name`` and its test id.
TEST_ID = "kXq3vWc9Lr"
DIRECTORY_ISS = "https://directory.example.org"


@pytest.fixture(autouse=True)
def registration_enabled(conformance_server: None, settings: Any) -> None:
    """The server certifying the variant: registration by initial access token."""
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ENABLED": True}


@pytest.fixture(scope="module")
def directory_key() -> Any:
    """The software-statement directory's signing key (the suite fetches Brazil's)."""
    return rsa_key()


@pytest.fixture
def trusted_directory(settings: Any, directory_key: Any) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(directory_key.public_key()))
    jwk.update(kid="directory-1", use="sig", alg="PS256")
    settings.CIBA = {
        **settings.CIBA,
        "SOFTWARE_STATEMENT_ISSUERS": {DIRECTORY_ISS: {"jwks": {"keys": [jwk]}}},
    }


# --- the suite's client keys and certificate ----------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def checksum(token: str) -> str:
    """How DOT finds a stored token (``token_checksum``): only a hash is kept."""
    return hashlib.sha256(token.encode()).hexdigest()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 (``keyIDFromThumbprint``): SHA-256 of the required members, sorted, no spaces."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    return b64url(
        hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode()).digest()
    )


class RegisteredKey:
    """``GeneratePS256ClientJWKsWithKeyID`` + ``GenerateMTLSCertificateFromJWKs`` +
    ``AddClientX509CertificateClaimToPublicJWKs``: one RSA key, its self-signed certificate,
    and the public JWK Set (with ``x5c``) the registration request carries."""

    def __init__(self, client_name: str, directory: Path) -> None:
        self.key = rsa_key()
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.kid = thumbprint(public)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(int(time.time() * 1000))
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        stem = directory / self.kid
        self.certificate = Credential(
            certificate, self.key, stem.with_suffix(".crt"), stem.with_suffix(".key")
        )
        self.certificate.cert_path.write_bytes(self.certificate.cert_pem)
        self.certificate.key_path.write_bytes(self.certificate.key_pem)
        der = certificate.public_bytes(serialization.Encoding.DER)
        public.update(use="sig", alg="PS256", kid=self.kid, x5c=[base64.b64encode(der).decode()])
        self.public_jwks = {"keys": [public]}


def registration_request(
    client_name: str,
    mode: str,
    auth: str,
    key: RegisteredKey,
    notification_uri: str,
    profile: str = "plain_fapi",
) -> dict[str, Any]:
    """``registerClient``'s request, in the order the suite builds it."""
    body: dict[str, Any] = {"client_name": f"{client_name} {TEST_ID}"}
    body["grant_types"] = [CIBA_GRANT_TYPE]
    body["jwks"] = key.public_jwks
    body["backchannel_user_code_parameter"] = False
    if mode == "ping":
        body["backchannel_token_delivery_mode"] = "ping"
        body["backchannel_client_notification_endpoint"] = notification_uri
    else:
        body["backchannel_token_delivery_mode"] = "poll"
    body["backchannel_authentication_request_signing_alg"] = "PS256"
    body["id_token_signed_response_alg"] = "PS256"
    body["response_types"] = []
    if auth == "private_key_jwt":
        body["token_endpoint_auth_method"] = "private_key_jwt"
        body["token_endpoint_auth_signing_alg"] = "PS256"
    else:
        body["token_endpoint_auth_method"] = "self_signed_tls_client_auth"
    if profile == "openbanking_uk":  # OpenBankingUkClientRegistrationSteps
        body["grant_types"].append("client_credentials")
    body["tls_client_certificate_bound_access_tokens"] = True
    return body


# --- the suite's HTTP calls (CallDynamicRegistrationEndpoint, CallClientConfigurationEndpoint) ------


def register(http: Any, body: Any, token: str | None, **extra: Any) -> Any:
    headers = {"HTTP_ACCEPT": JSON, **extra}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return http.post(REGISTER, data, content_type=JSON, **headers)


def configuration(http: Any, client: dict[str, Any], method: str = "GET", body: Any = None) -> Any:
    """``CallClientConfigurationEndpoint`` (GET, or PUT with a body) and
    ``UnregisterDynamicallyRegisteredClient`` (DELETE), with the registration access token."""
    path = urlsplit(client["registration_client_uri"]).path
    headers = {"HTTP_ACCEPT": JSON, "HTTP_AUTHORIZATION": f"Bearer {client['registration_access_token']}"}
    if body is None:
        return http.generic(method, path, b"", **headers)
    return http.generic(method, path, json.dumps(body).encode(), content_type=JSON, **headers)


def successful_registration(response: Any) -> dict[str, Any]:
    """``CallDynamicRegistrationEndpointAndVerifySuccessfulResponse``'s checks."""
    assert response["Content-Type"].split(";")[0].strip() == JSON  # EnsureContentTypeJson
    assert response.status_code == 201, response.content  # EnsureHttpStatusCodeIs201
    client = response.json()
    assert "error" not in client  # CheckNoErrorFromDynamicRegistrationEndpoint
    assert client.get("client_id")  # ExtractDynamicRegistrationResponse
    # VerifyClientManagementCredentials: both or neither; the URI absolute, the token not empty.
    assert ("registration_client_uri" in client) == ("registration_access_token" in client)
    if "registration_client_uri" in client:
        uri = urlsplit(client["registration_client_uri"])
        issuer = urlsplit(ISSUER)
        assert (uri.scheme, uri.netloc) == (issuer.scheme, issuer.netloc)  # https in a deployment
        assert client["registration_access_token"]
    if "client_secret" in client:  # VerifyDynamicRegistrationResponseClientCredentials
        assert isinstance(client.get("client_secret_expires_at"), int)
    return client


def registration_error(response: Any, *codes: str) -> dict[str, Any]:
    """``EnsureContentTypeJson``, ``EnsureHttpStatusCodeIs400`` and
    ``CheckErrorFromDynamicRegistrationEndpointIs...``: one of ``codes`` (any, if none given)."""
    assert response["Content-Type"].split(";")[0].strip() == JSON
    assert response.status_code == 400, response.content
    body = response.json()
    assert body.get("error"), body
    if codes:
        assert body["error"] in codes, body
    assert "client_id" not in body
    return body


def refused(response: Any, *statuses: int) -> None:
    """``EnsureHttpStatusCodeIs401`` and ``CheckNoClientIdFromClientConfigurationEndpoint``."""
    assert response.status_code in (statuses or (401,)), response.content
    if response.content and response["Content-Type"].startswith(JSON):
        assert "client_id" not in response.json()


def configuration_request(client: dict[str, Any]) -> dict[str, Any]:
    """``CreateClientConfigurationRequestFromDynamicClientRegistrationResponse``: the registration
    response less the four members RFC 7592 §2.2 forbids in an update."""
    forbidden = ("registration_access_token", "registration_client_uri", "client_secret_expires_at")
    return {k: v for k, v in client.items() if k not in (*forbidden, "client_id_issued_at")}


# --- the variant ------------------------------------------------------------------------------------


@pytest.fixture
def dynamic_clients(client, recorder, django_capture_on_commit_callbacks, client_auth_type, tmp_path, alice):
    """``dynamic_clients(mode, profile="plain_fapi")``: the suite's two clients, registered by the
    suite itself, each with its own initial access token; returns ``[(Suite, registration)]``."""

    def make(mode: str, profile: str = "plain_fapi") -> list[tuple[Suite, dict[str, Any]]]:
        made = []
        for name in ("client1", "client2"):
            token, _ = initial_access_tokens.issue(f"OIDF conformance suite {name}")
            key = RegisteredKey(f"{name} {TEST_ID}", tmp_path)
            body = registration_request(
                name, mode, client_auth_type, key, recorder.url(f"/{name}/cb"), profile
            )
            # With mTLS available the suite calls the registration endpoint over it.
            tls = {} if client_auth_type == "private_key_jwt" else presenting(key.certificate)
            registered = successful_registration(register(client, body, token, **tls))
            app = Application.objects.get(client_id=registered["client_id"])
            suite = Suite(
                client,
                app,
                key.key,
                key.kid,
                recorder,
                django_capture_on_commit_callbacks,
                key.certificate,
                client_auth_type,
            )
            made.append((suite, registered))
        return made

    return make


def test_fapi_ciba_id1_with_dynamically_registered_clients(dynamic_clients, ciba_mode):
    """``fapi-ciba-id1``, ``client_registration=dynamic_client``: both clients register, run the
    whole flow, and are deleted at the end (``UnregisterDynamicallyRegisteredClient``: 204)."""
    clients = dynamic_clients(ciba_mode)
    for suite, _ in clients:
        suite.recorder.received.clear()
        auth_req_id = suite.start()
        suite.automated_approval(auth_req_id)
        tokens = suite.tokens(auth_req_id)
        # The registered metadata is what the server enforces: PS256 ID tokens, bound tokens.
        assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "PS256"
        access = get_access_token_model().objects.get(token_checksum=checksum(tokens["access_token"]))
        assert access.application.client_id == suite.app.client_id
    for suite, registered in clients:
        deleted = configuration(suite.http, registered, "DELETE")
        assert deleted.status_code == 204, deleted.content
        assert not Application.objects.filter(client_id=registered["client_id"]).exists()


def test_the_registration_response_echoes_the_ciba_metadata_the_suite_sent(dynamic_clients, ciba_mode):
    """What the suite copies back into its client configuration is what it registered."""
    (suite, registered), _ = dynamic_clients(ciba_mode)
    assert registered["grant_types"] == [CIBA_GRANT_TYPE]
    assert registered["backchannel_token_delivery_mode"] == ciba_mode
    assert registered["backchannel_authentication_request_signing_alg"] == "PS256"
    assert registered["id_token_signed_response_alg"] == "PS256"
    assert registered["tls_client_certificate_bound_access_tokens"] is True
    assert registered["backchannel_user_code_parameter"] is False
    assert registered["client_name"] == f"client1 {TEST_ID}"
    assert isinstance(registered["client_id_issued_at"], int)
    assert registered["jwks"]["keys"][0]["kid"] == suite.kid
    if ciba_mode == "ping":
        assert registered["backchannel_client_notification_endpoint"] == suite.recorder.url("/client1/cb")


def test_fapi_ciba_id1_openbanking_uk_registers_client_credentials_beside_ciba(dynamic_clients, ciba_mode):
    """``fapi_ciba_profile=openbanking_uk``: the client registers both grants (lodge a consent
    with client_credentials, then approve it by CIBA), and may use both."""
    (suite, registered), _ = dynamic_clients(ciba_mode, profile="openbanking_uk")
    assert set(registered["grant_types"]) == {CIBA_GRANT_TYPE, "client_credentials"}
    granted = suite.post("/o/token/", {"grant_type": "client_credentials", "scope": "openid"})
    assert granted.status_code == 200, granted.content
    auth_req_id = suite.start()
    suite.automated_approval(auth_req_id)
    suite.tokens(auth_req_id)


# --- RFC 7592: the Brazil DCR modules' client management ------------------------------------------


@pytest.fixture
def uk_client(dynamic_clients, ciba_mode):
    """One client registered with client_credentials beside CIBA, as the DCR modules use it."""
    return dynamic_clients(ciba_mode, profile="openbanking_uk")[0]


def test_client_delete(uk_client):
    """``...-brazildcr-client-delete``: client_credentials works; after DELETE, GET is 401 with
    no client, a second DELETE 400/401, and the token endpoint says ``invalid_client``."""
    suite, registered = uk_client
    grant = {"grant_type": "client_credentials", "scope": "openid"}
    assert suite.post("/o/token/", grant).status_code == 200
    assert configuration(suite.http, registered, "DELETE").status_code == 204
    refused(configuration(suite.http, registered))
    refused(configuration(suite.http, registered, "DELETE"), 400, 401)
    after = suite.post("/o/token/", grant)
    assert after.status_code in (400, 401) and after.json()["error"] == "invalid_client", after.content


def test_a_deleted_clients_pending_requests_and_tokens_end(uk_client):
    """RFC 7592 §2.3: deleting a client invalidates its grants; its pending request ends and its
    access token stops working."""
    suite, registered = uk_client
    auth_req_id = suite.start()
    granted = suite.post("/o/token/", {"grant_type": "client_credentials", "scope": "openid"}).json()
    assert configuration(suite.http, registered, "DELETE").status_code == 204
    assert not AuthenticationRequest.objects.filter(
        auth_req_id=auth_req_id, state=AuthenticationRequest.State.PENDING
    ).exists()
    assert (
        not get_access_token_model().objects.filter(token_checksum=checksum(granted["access_token"])).exists()
    )


def test_invalid_registration_access_token(uk_client):
    """``...-brazildcr-invalid-registration-access-token``: GET 401 without the client, DELETE
    400/401; the real token still deletes."""
    suite, registered = uk_client
    forged = {**registered, "registration_access_token": "ivegotthisterriblepaininallthediodesdownmyleftside"}
    refused(configuration(suite.http, forged))
    refused(configuration(suite.http, forged, "DELETE"), 400, 401)
    refused(configuration(suite.http, {**registered, "registration_access_token": ""}))
    assert configuration(suite.http, registered, "DELETE").status_code == 204


def test_another_clients_registration_access_token_reads_nothing(dynamic_clients, ciba_mode):
    (_, first), (suite, second) = dynamic_clients(ciba_mode)
    crossed = {**first, "registration_access_token": second["registration_access_token"]}
    refused(configuration(suite.http, crossed))
    assert Application.objects.filter(client_id=first["client_id"]).exists()


@pytest.mark.parametrize("rotate", [True, False])
def test_update_client_config(uk_client, settings, rotate):
    """``...-brazildcr-update-client-config``: a PUT of the registration response (less the four
    members RFC 7592 §2.2 forbids) with one change succeeds, answers 200 JSON with the same
    client_id and registration_client_uri, and the change holds; a PUT with a bad token is 401.
    The suite's Brazil module expects the access token not rotated, and echoed back; this server
    rotates it (the old one is then refused) unless ``REGISTRATION_ACCESS_TOKEN_ROTATE`` is off."""
    settings.CIBA = {**settings.CIBA, "REGISTRATION_ACCESS_TOKEN_ROTATE": rotate}
    suite, registered = uk_client
    update = configuration_request(registered)
    update["client_name"] = f"client1 {TEST_ID} (renamed)"
    response = configuration(suite.http, registered, "PUT", update)
    # CheckRegistrationClientEndpointContentTypeHttpStatus200, ...ContentType
    assert response.status_code == 200, response.content
    assert response["Content-Type"].split(";")[0].strip() == JSON
    updated = response.json()
    assert updated["client_id"] == registered["client_id"]  # CheckClientIdFromClientConfigurationEndpoint
    assert updated["registration_client_uri"] == registered["registration_client_uri"]
    assert updated["client_name"] == update["client_name"]
    assert Application.objects.get(client_id=registered["client_id"]).name == update["client_name"]
    if rotate:
        assert updated["registration_access_token"] != registered["registration_access_token"]
        refused(configuration(suite.http, registered))
    else:  # CheckClientConfigurationAccessTokenFromClientConfigurationEndpointIsNotRotated
        assert updated["registration_access_token"] == registered["registration_access_token"]
    current = {**registered, "registration_access_token": updated["registration_access_token"]}
    assert configuration(suite.http, current).json()["client_name"] == update["client_name"]
    # updateClientConfigWithBadAccessToken
    forged = {**registered, "registration_access_token": "ivegotthisterriblepaininallthediodesdownmyleftside"}
    refused(configuration(suite.http, forged, "PUT", {**update, "client_name": "hijacked"}))
    assert Application.objects.get(client_id=registered["client_id"]).name == update["client_name"]
    # The client keeps working with the metadata it has.
    auth_req_id = suite.start()
    suite.automated_approval(auth_req_id)
    suite.tokens(auth_req_id)


def test_update_client_config_is_validated_as_a_registration(uk_client):
    """``...-update-client-config-invalid-redirect-uri`` / ``-invalid-jwks-by-value``: an update
    the registration rules refuse is a 400 with the RFC 7591 code, and changes nothing."""
    suite, registered = uk_client
    private = {**registered["jwks"]["keys"][0], "d": b64url(b"not really a private exponent"), "kid": "x"}
    update = {**configuration_request(registered), "jwks": {"keys": [private]}}
    registration_error(configuration(suite.http, registered, "PUT", update), "invalid_client_metadata")
    ping_without_endpoint = {**configuration_request(registered), "backchannel_token_delivery_mode": "ping"}
    ping_without_endpoint.pop("backchannel_client_notification_endpoint", None)
    registration_error(
        configuration(suite.http, registered, "PUT", ping_without_endpoint), "invalid_client_metadata"
    )
    assert configuration(suite.http, registered).json()["jwks"] == registered["jwks"]


# --- registration negatives -----------------------------------------------------------------------------


@pytest.fixture
def suite_request(tmp_path, recorder, client_auth_type):
    key = RegisteredKey(f"client1 {TEST_ID}", tmp_path)
    return registration_request("client1", "poll", client_auth_type, key, recorder.url("/client1/cb"))


def test_invalid_redirect_uri(client, suite_request):
    """``...-brazil-dcr-invalid-redirect-uri``: ``invalid_redirect_uri`` or
    ``invalid_client_metadata``, and nothing registered."""
    token, _ = initial_access_tokens.issue("suite")
    body = {
        **suite_request,
        "grant_types": [CIBA_GRANT_TYPE, "authorization_code"],
        "response_types": ["code"],
        "redirect_uris": ["https://client.example.org/cb#fragment"],
    }
    before = Application.objects.count()
    registration_error(register(client, body, token), "invalid_redirect_uri", "invalid_client_metadata")
    assert Application.objects.count() == before


def test_no_redirect_uri(client, suite_request):
    """``...-brazil-dcr-no-redirect-uri``: the authorization code grant without redirect URIs."""
    token, _ = initial_access_tokens.issue("suite")
    body = {
        **suite_request,
        "grant_types": [CIBA_GRANT_TYPE, "authorization_code"],
        "response_types": ["code"],
    }
    before = Application.objects.count()
    registration_error(register(client, body, token), "invalid_redirect_uri", "invalid_client_metadata")
    assert Application.objects.count() == before


def test_without_an_initial_access_token_nothing_is_registered(client, suite_request):
    """The variant's ``initial_access_token``: registration is closed without one (RFC 7591 §3,
    RFC 6750 §3.1: 401 ``invalid_token`` with a Bearer challenge)."""
    before = Application.objects.count()
    for token in (None, "not-an-initial-access-token"):
        response = register(client, suite_request, token)
        assert response.status_code == 401, response.content
        assert response["WWW-Authenticate"].startswith("Bearer")
        if token:
            assert response.json()["error"] == "invalid_token"
    assert Application.objects.count() == before


def test_a_single_use_initial_access_token_registers_one_client(client, suite_request):
    token, _ = initial_access_tokens.issue("suite", uses=1)
    successful_registration(register(client, suite_request, token))
    again = register(client, suite_request, token)
    assert again.status_code == 401 and again.json()["error"] == "invalid_token"


def software_statement(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": DIRECTORY_ISS,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "software_id": "suite-software",
        **claims,
    }
    return jwt.encode(body, key, algorithm="PS256", headers={"kid": "directory-1"})


def invalidated(statement: str) -> str:
    """``InvalidateSoftwareStatementSignature``: every byte of the signature XOR 0x5A."""
    head, payload, signature = statement.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    return f"{head}.{payload}.{b64url(bytes(b ^ 0x5A for b in raw))}"


def test_a_software_statement_from_the_trusted_directory_registers(
    client, suite_request, trusted_directory, directory_key
):
    """RFC 7591 §2.3 (the Brazil modules' positive path): the statement's claims win over the
    request's, and it is the credential (no initial access token)."""
    statement = software_statement(directory_key, client_name=f"Directory name {TEST_ID}")
    registered = successful_registration(
        register(client, {**suite_request, "software_statement": statement}, None)
    )
    assert registered["client_name"] == f"Directory name {TEST_ID}"
    assert registered["software_id"] == "suite-software"


def test_invalid_software_statement_signature(client, suite_request, trusted_directory, directory_key):
    """``...-brazil-dcr-invalid-software-statement-signature``: 400 ``invalid_software_statement``."""
    statement = invalidated(software_statement(directory_key))
    before = Application.objects.count()
    response = register(client, {**suite_request, "software_statement": statement}, None)
    registration_error(response, "invalid_software_statement")
    assert Application.objects.count() == before


def test_no_software_statement(client, suite_request, trusted_directory, settings):
    """``...-brazil-dcr-no-software-statement``: where statements are required, the same values
    in the request body alone are refused (any RFC 7591 error)."""
    settings.CIBA = {**settings.CIBA, "SOFTWARE_STATEMENT_REQUIRED": True}
    token, _ = initial_access_tokens.issue("suite")
    before = Application.objects.count()
    registration_error(register(client, {**suite_request, "software_id": "suite-software"}, token))
    assert Application.objects.count() == before


def test_a_software_statement_from_an_unknown_directory_is_unapproved(
    client, suite_request, trusted_directory
):
    other = rsa_key()
    statement = jwt.encode(
        {"iss": "https://elsewhere.example", "iat": int(time.time()), "software_id": "x"},
        other,
        algorithm="PS256",
    )
    registration_error(
        register(client, {**suite_request, "software_statement": statement}, None),
        "unapproved_software_statement",
    )


def test_get_dynamic_server_configuration_names_the_registration_endpoint(client):
    """``GetDynamicServerConfiguration``: the suite registers at discovery's ``registration_endpoint``."""
    document = client.get("/o/.well-known/openid-configuration").json()
    assert document["registration_endpoint"] == f"{ISSUER}/register/"


def test_an_expired_software_statement_is_invalid(client, suite_request, trusted_directory, directory_key):
    """``FAPIBrazilValidateSoftwareStatementIat``'s rule, as a server applies it: a statement
    issued longer ago than ``SOFTWARE_STATEMENT_MAX_AGE`` (300 s) is refused."""
    statement = software_statement(directory_key, iat=int(time.time()) - 3600)
    response = register(client, {**suite_request, "software_statement": statement}, None)
    registration_error(response, "invalid_software_statement")


def test_a_software_statement_contradicting_the_profile_registers_nothing(
    client, suite_request, trusted_directory, directory_key
):
    """The statement's claims win, and are then validated as any registration: a directory
    that vouches for a client-secret client cannot get one past the FAPI-CIBA profile."""
    statement = software_statement(directory_key, token_endpoint_auth_method="client_secret_basic")
    before = Application.objects.count()
    response = register(client, {**suite_request, "software_statement": statement}, None)
    body = registration_error(response, "invalid_client_metadata")
    assert "token_endpoint_auth_method" in body["error_description"]
    assert Application.objects.count() == before
