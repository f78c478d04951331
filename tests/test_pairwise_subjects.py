"""Pairwise subject identifiers (OIDC Core §8.1, issue 27): each sector sees its own ``sub`` for a
user, everywhere a ``sub`` leaves the server, and hints naming it lead back to the user."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model

from ciba import designations, services, subjects
from ciba.backends.users import UsernameOrEmailUserResolver
from ciba.errors import InvalidClientMetadata
from ciba.models import AuthenticationRequest, SubjectIdentifier
from ciba.tokens import mint_for_push
from tests.conftest import basic_auth
from tests.keys import public_jwk, rsa_key, sign
from tests.protocol import backchannel, oauth_error, poll, token

Application = get_application_model()
ISSUER = "http://testserver/o"
KEY = rsa_key()


def claims_of(id_token: str) -> dict[str, Any]:
    return jwt.decode(id_token, options={"verify_signature": False})


def approved_tokens(client: Any, app: Any, secret: str, body: dict[str, str] | None = None) -> dict[str, Any]:
    """Tokens of a request of ``app`` for alice, approved, through the token endpoint."""
    params = body or {"scope": "openid profile", "login_hint": "alice"}
    if app.backchannel_token_delivery_mode == "ping":
        params = {**params, "client_notification_token": "nt-0123456789"}
    response = backchannel(client, app, secret, params)
    assert response.status_code == 200, response.content
    ar = AuthenticationRequest.objects.select_related("user").get(auth_req_id=response.json()["auth_req_id"])
    services.approve(ar, user=ar.user)
    tokens = poll(client, app, secret, ar.auth_req_id)
    assert tokens.status_code == 200, tokens.content
    return tokens.json()


def designated_resource_server() -> tuple[Any, str]:
    """A resource server that may introspect, and its secret."""
    secret = "rs-secret-" + "x" * 40
    server = Application.objects.create(
        name="API",
        client_type="confidential",
        authorization_grant_type="client-credentials",
        client_secret=secret,
    )
    designations.designate_resource_server(server)
    return server, secret


def sub_seen_by(client: Any, app: Any, secret: str) -> str:
    return claims_of(approved_tokens(client, app, secret)["id_token"])["sub"]


def ask(client: Any, app: Any, secret: str, params: dict[str, str]) -> Any:
    return backchannel(client, app, secret, {"scope": "openid", **params})


def user_of(response: Any) -> Any:
    assert response.status_code == 200, response.content
    return AuthenticationRequest.objects.get(auth_req_id=response.json()["auth_req_id"]).user


def lht(app: Any, sub: str) -> str:
    """A login_hint_token ``app`` signs naming ``sub``."""
    claims = {"iss": app.client_id, "aud": ISSUER, "sub": sub, "exp": int(time.time()) + 60}
    return sign(claims, KEY, "RS256", "k1")


@pytest.fixture
def pairwise(make_client: Any) -> Any:
    """A factory of pairwise poll clients that sign login_hint_tokens with ``KEY``."""

    def factory(mode: str = "poll", **fields: Any) -> tuple[Any, str]:
        fields.setdefault("jwks", {"keys": [public_jwk(KEY, "k1")]})
        return make_client(mode, subject_type="pairwise", **fields)

    return factory


# --- what each client sees --------------------------------------------------------------------


def test_two_clients_of_different_sectors_see_different_subs_for_one_user(client, alice, pairwise):
    first, second = pairwise(), pairwise()
    sub_first, sub_second = sub_seen_by(client, *first), sub_seen_by(client, *second)
    assert sub_first != sub_second
    assert str(alice.pk) not in (sub_first, sub_second)
    assert len(sub_first) == 43  # base64url of SHA-256, unpadded


def test_clients_sharing_a_sector_identifier_uri_see_the_same_sub(client, alice, pairwise):
    shared = "https://sector.example.com/clients.json"
    first = pairwise(sector_identifier_uri=shared)
    second = pairwise(sector_identifier_uri=shared)
    assert sub_seen_by(client, *first) == sub_seen_by(client, *second)
    assert SubjectIdentifier.objects.get(user=alice).sector == "sector.example.com"


def test_a_public_client_keeps_seeing_the_primary_key(client, alice, make_client):
    assert sub_seen_by(client, *make_client("poll")) == str(alice.pk)
    assert not SubjectIdentifier.objects.exists()


def test_the_default_subject_type_applies_to_clients_that_chose_none(client, alice, make_client, settings):
    settings.CIBA = {**django_settings.CIBA, "DEFAULT_SUBJECT_TYPE": "pairwise"}
    app, secret = make_client("poll")
    assert sub_seen_by(client, app, secret) == subjects.pairwise_subject(alice, app)
    assert sub_seen_by(client, *make_client("poll", subject_type="public")) == str(alice.pk)


def test_the_sub_is_stored_once_and_survives_a_new_salt(client, alice, pairwise, settings):
    app, secret = pairwise()
    before = sub_seen_by(client, app, secret)
    settings.CIBA = {**django_settings.CIBA, "PAIRWISE_SUBJECT_SALT": "a-new-salt"}
    assert sub_seen_by(client, app, secret) == before
    assert SubjectIdentifier.objects.filter(user=alice).count() == 1
    # A user seen for the first time after the change gets a sub of the new salt.
    bob = get_user_model().objects.create_user("bob", "bob@example.com")
    assert subjects.pairwise_subject(bob, app) == subjects.derive_pairwise(subjects.sector(app), bob.pk)


def test_id_token_userinfo_and_introspection_agree(client, alice, pairwise):
    app, secret = pairwise()
    tokens = approved_tokens(client, app, secret)
    sub = claims_of(tokens["id_token"])["sub"]
    info = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert info.status_code == 200, info.content
    assert info.json()["sub"] == sub
    resource_server, rs_secret = designated_resource_server()
    answer = client.post(
        "/o/introspect/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION=basic_auth(resource_server.client_id, rs_secret),
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["active"] is True and answer.json()["sub"] == sub


def test_introspection_of_a_public_clients_token_answers_the_public_sub(client, alice, make_client):
    tokens = approved_tokens(client, *make_client("poll"))
    server, server_secret = designated_resource_server()
    answer = client.post(
        "/o/introspect/",
        {"token": tokens["access_token"]},
        HTTP_AUTHORIZATION=basic_auth(server.client_id, server_secret),
    )
    assert answer.json()["sub"] == str(alice.pk)


def test_a_refreshed_id_token_keeps_the_pairwise_sub(client, alice, pairwise):
    app, secret = pairwise()
    tokens = approved_tokens(client, app, secret)
    refreshed = token(
        client, app, secret, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.content
    assert claims_of(refreshed.json()["id_token"])["sub"] == claims_of(tokens["id_token"])["sub"]


def test_a_ping_client_collects_an_id_token_with_its_pairwise_sub(client, alice, pairwise, recorder):
    app, secret = pairwise("ping", backchannel_client_notification_endpoint=recorder.url("/cb"))
    sub = claims_of(approved_tokens(client, app, secret)["id_token"])["sub"]
    assert sub == subjects.pairwise_subject(alice, app)
    assert subjects.sector(app) == "127.0.0.1"  # the notification endpoint's host


def test_a_pushed_id_token_carries_the_pairwise_sub(alice, pairwise):
    app, _secret = pairwise("push", backchannel_client_notification_endpoint="https://push.example.com/cb")
    ar = services.create_request(
        expires_in=60,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        client_notification_token="nt-0123456789",
    )
    services.approve(ar, user=alice)
    ar.refresh_from_db()
    pushed = mint_for_push(AuthenticationRequest.objects.select_related("client", "user").get(pk=ar.pk))
    assert claims_of(pushed["id_token"])["sub"] == subjects.pairwise_subject(alice, app)
    assert subjects.sector(app) == "push.example.com"


# --- the sector -----------------------------------------------------------------------------------


KEYS = "https://keys.example.com/jwks.json"


@pytest.mark.parametrize(
    ("mode", "fields", "expected"),
    [
        ("poll", {"sector_identifier_uri": "https://Sector.Example.com:8443/ids.json"}, "sector.example.com"),
        (
            "poll",
            {"redirect_uris": "https://app.example.com/cb https://app.example.com/b"},
            "app.example.com",
        ),
        ("poll", {"jwks_uri": KEYS}, "keys.example.com"),
        # CIBA 4: poll and ping by the keys' host, push by where tokens are pushed.
        ("ping", {"jwks_uri": KEYS}, "keys.example.com"),
        ("ping", {}, "client.example.com"),
        ("push", {"jwks_uri": KEYS}, "client.example.com"),
    ],
)
def test_the_sector_is_the_host_of_the_clients_urls(make_client, mode, fields, expected):
    app, _ = make_client(mode, **fields)
    assert subjects.sector(app) == expected


def test_a_poll_client_without_urls_is_a_sector_of_its_own(make_client):
    app, _ = make_client("poll")
    assert subjects.sector(app) == f"client:{app.client_id}"


def test_a_pairwise_client_with_redirect_uris_on_two_hosts_must_register_a_sector(make_client):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        make_client(
            "poll", subject_type="pairwise", redirect_uris="https://a.example.com/cb https://b.example.com/cb"
        )
    assert "sector_identifier_uri" in refused.value.message_dict


# --- hints lead back to the user ---------------------------------------------------------------


def test_an_id_token_hint_issued_to_a_pairwise_client_resolves_to_the_user(client, alice, pairwise):
    app, secret = pairwise()
    hint = approved_tokens(client, app, secret)["id_token"]
    assert user_of(ask(client, app, secret, {"id_token_hint": hint})) == alice


def test_an_id_token_hint_issued_to_a_public_client_still_resolves(client, alice, make_client):
    app, secret = make_client("poll")
    hint = approved_tokens(client, app, secret)["id_token"]
    assert user_of(ask(client, app, secret, {"id_token_hint": hint})) == alice


def test_a_login_hint_token_naming_the_pairwise_sub_resolves_to_the_user(client, alice, pairwise):
    app, secret = pairwise()
    sub = sub_seen_by(client, app, secret)
    assert user_of(ask(client, app, secret, {"login_hint_token": lht(app, sub)})) == alice


def test_a_pairwise_sub_of_another_sector_names_nobody(client, alice, pairwise):
    first, (second, secret) = pairwise(), pairwise()
    foreign = sub_seen_by(client, *first)
    response = ask(client, second, secret, {"login_hint_token": lht(second, foreign)})
    oauth_error(response, 400, "unknown_user_id")
    assert subjects.user_for_subject(foreign, second) is None
    assert subjects.user_for_subject(foreign, first[0]) == alice


def test_a_pairwise_client_cannot_name_a_user_by_primary_key(client, alice, pairwise):
    app, secret = pairwise()
    oauth_error(
        ask(client, app, secret, {"login_hint_token": lht(app, str(alice.pk))}), 400, "unknown_user_id"
    )
    assert subjects.user_for_subject(str(alice.pk), app) is None


def test_an_inactive_user_is_never_found_by_a_sub(client, alice, pairwise):
    app, secret = pairwise()
    sub = sub_seen_by(client, app, secret)
    alice.is_active = False
    alice.save()
    assert subjects.user_for_subject(sub, app) is None


@pytest.mark.parametrize("sub", ["", "x" * 300, "a\x00b", 42, None])
def test_a_malformed_sub_names_nobody(alice, pairwise, sub):
    app, _ = pairwise()
    assert subjects.user_for_subject(sub, app) is None


def test_a_claims_request_for_the_pairwise_sub_is_compared_with_it(client, alice, pairwise):
    app, secret = pairwise()
    sub = sub_seen_by(client, app, secret)
    wanted = lambda value: json.dumps({"id_token": {"sub": {"value": value}}})  # noqa: E731
    assert ask(client, app, secret, {"login_hint": "alice", "claims": wanted(sub)}).status_code == 200
    refused = ask(client, app, secret, {"login_hint": "alice", "claims": wanted(str(alice.pk))})
    oauth_error(refused, 403, "access_denied")


# --- a site's own public sub ----------------------------------------------------------------------


@pytest.fixture
def custom_sub(monkeypatch: Any) -> None:
    """The site's own ``sub`` (DOT's claim overridden by the validator's additional claims)."""
    from oauth2_provider.oauth2_validators import OAuth2Validator

    original = OAuth2Validator.get_claim_dict

    def get_claim_dict(self: Any, request: Any) -> dict[str, Any]:
        claims = original(self, request)
        claims["sub"] = lambda r: f"user-{r.user.get_username()}"
        return claims

    monkeypatch.setattr(OAuth2Validator, "get_claim_dict", get_claim_dict)


def test_a_sites_own_public_sub_is_issued_and_leads_back_to_the_user(client, alice, make_client, custom_sub):
    app, secret = make_client("poll", jwks={"keys": [public_jwk(KEY, "k1")]})
    hint = approved_tokens(client, app, secret)["id_token"]
    assert claims_of(hint)["sub"] == "user-alice"
    assert user_of(ask(client, app, secret, {"id_token_hint": hint})) == alice
    assert user_of(ask(client, app, secret, {"login_hint_token": lht(app, "user-alice")})) == alice
    # The primary key is not what this site hands out: it names nobody.
    assert subjects.user_for_subject(str(alice.pk), app) is None


def test_pairwise_clients_of_a_site_with_its_own_sub_still_get_pairwise_ones(
    client, alice, pairwise, custom_sub
):
    app, secret = pairwise()
    assert sub_seen_by(client, app, secret) == subjects.pairwise_subject(alice, app) != "user-alice"


# --- the sector identifier document ----------------------------------------------------------------


def test_a_sector_document_listing_the_clients_hosts_is_accepted(json_server):
    json_server.documents["/ids.json"] = ["https://keys.example.com/jwks.json", "https://cb.example.com/ciba"]
    listed = subjects.verify_sector_identifier(
        json_server.url("/ids.json"), ["https://keys.example.com/other.json", "https://cb.example.com/x"]
    )
    assert "https://cb.example.com/ciba" in listed


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (["https://keys.example.com/jwks.json"], "lists no URL on the host cb.example.com"),
        ({"urls": ["https://cb.example.com/"]}, "must be a non-empty JSON array of URLs"),
        ([], "must be a non-empty JSON array of URLs"),
        (["https://cb.example.com/", 7], "every entry of the document must be an absolute URL"),
        (["https://cb.example.com/", "not a url"], "every entry of the document must be an absolute URL"),
        ([f"https://cb.example.com/{'x' * 1000}/{n}" for n in range(80)], "larger than 65536 bytes"),
    ],
)
def test_a_sector_document_that_does_not_vouch_for_the_client_is_refused(json_server, document, problem):
    json_server.documents["/ids.json"] = document
    with pytest.raises(InvalidClientMetadata) as refused:
        subjects.verify_sector_identifier(json_server.url("/ids.json"), ["https://cb.example.com/ciba"])
    assert problem in refused.value.description
    assert refused.value.description.isascii()


def test_a_sector_document_must_list_every_redirect_uri(json_server):
    json_server.documents["/ids.json"] = ["https://app.example.com/cb"]
    with pytest.raises(InvalidClientMetadata, match="every redirect URI"):
        subjects.verify_sector_identifier(
            json_server.url("/ids.json"), [], redirect_uris=["https://app.example.com/other"]
        )


def test_a_missing_sector_document_is_refused(json_server):
    with pytest.raises(InvalidClientMetadata, match="answered HTTP 404, not 200"):
        subjects.verify_sector_identifier(json_server.url("/absent.json"), [])


def test_an_unreachable_sector_document_is_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InvalidClientMetadata, match="could not be fetched"):
        subjects.verify_sector_identifier(f"http://127.0.0.1:{port}/ids.json", [])


def test_a_sector_document_over_http_is_refused_in_production(json_server, settings):
    settings.CIBA = {**django_settings.CIBA, "CALLBACK_ALLOW_HTTP": False}
    json_server.documents["/ids.json"] = ["https://cb.example.com/"]
    with pytest.raises(InvalidClientMetadata, match="must use https"):
        subjects.verify_sector_identifier(json_server.url("/ids.json"), [])
    assert json_server.hits == {}


def test_a_sector_document_on_a_private_address_is_refused_in_production(json_server, settings):
    settings.CIBA = {**django_settings.CIBA, "CALLBACK_ALLOW_PRIVATE_NETWORKS": False}
    json_server.documents["/ids.json"] = ["https://cb.example.com/"]
    with pytest.raises(InvalidClientMetadata, match="public host"):
        subjects.verify_sector_identifier(json_server.url("/ids.json"), [])
    assert json_server.hits == {}


def test_a_resolver_overriding_the_old_user_for_subject_keeps_working(client, alice, make_client, settings):
    OldResolver.asked.clear()
    app, secret = make_client("poll")
    hint = approved_tokens(client, app, secret)["id_token"]
    settings.CIBA = {
        **django_settings.CIBA,
        "USER_RESOLVER_CLASS": "tests.test_pairwise_subjects.OldResolver",
    }
    assert user_of(ask(client, app, secret, {"id_token_hint": hint})) == alice
    assert OldResolver.asked == [str(alice.pk)]


class OldResolver(UsernameOrEmailUserResolver):
    """A site's resolver written against ``user_for_subject(subject)``, before it took a client."""

    asked: list[str] = []

    def user_for_subject(self, subject: str) -> Any:  # type: ignore[override]
        OldResolver.asked.append(subject)
        return get_user_model().objects.get(pk=subject)
