"""CIBA metadata (CIBA §4) in DOT's OpenID and RFC 8414 discovery documents.

DOT's discovery views have no extension hook, so these subclasses add the CIBA members to
the document DOT builds. Every value comes from ``CIBA`` settings or DOT's settings, so
the documents cannot drift from what the endpoints enforce.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import NoReverseMatch, reverse
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import ConnectDiscoveryInfoView, OAuthServerMetadataView

from .. import assurance, constants, hint_tokens, profile
from .. import authorization_details as rar
from ..client_registration import registration_endpoint
from ..conf import ciba_settings
from ..endpoints import absolute_url, backchannel_authentication_endpoint, mtls_endpoint_aliases
from ..signing import id_token_algs_available

#: This server's extension (ciba.views.cancel): not a member CIBA Core 1.0 defines.
CANCEL_ENDPOINT = "backchannel_authentication_cancel_endpoint"
CANCEL_URL_NAME = "ciba:backchannel-authentication-cancel"
#: This server's extension: which login_hint_token formats the backchannel endpoint accepts
#: (CIBA §7.1 leaves the format to the server; Core 1.0 defines no metadata for it).
LOGIN_HINT_TOKEN_TYPES = "backchannel_login_hint_token_types_supported"
#: A JWT the client signs with its registered keys (ciba.backends.users).
CLIENT_SIGNED_JWT = "client-signed-jwt"
#: A code this server signed for a signed-in user, "show my code" (ciba.hint_tokens).
SERVER_ISSUED_JWT = "server-issued-jwt"


def login_hint_token_types() -> list[str]:
    """The ``login_hint_token`` formats accepted: the client's own JWT always, this server's
    codes while ``LOGIN_HINT_TOKEN_ISSUANCE`` is on (``ciba.hint_tokens`` refuses them when off)."""
    types = [CLIENT_SIGNED_JWT]
    if hint_tokens.enabled():
        types.append(SERVER_ISSUED_JWT)
    return types


def supported_grant_types() -> list[str]:
    """DOT's advertised grant types (with its RFC 9700 gates applied) plus the CIBA grant.

    Only poll and ping clients use the CIBA grant at the token endpoint, so a server that
    only supports push does not advertise it (CIBA §4).
    """
    grant_types = list(oauth2_settings.OAUTH2_GRANT_TYPES_SUPPORTED)
    if oauth2_settings.COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT:
        grant_types = [g for g in grant_types if g != "implicit"]
    if oauth2_settings.COMPLIANT_BCP_RFC9700_PASSWORD_GRANT:
        grant_types = [g for g in grant_types if g != "password"]
    polls = any(mode in constants.TOKEN_ENDPOINT_MODES for mode in profile.delivery_modes())
    if polls and constants.CIBA_GRANT_TYPE not in grant_types:
        grant_types.append(constants.CIBA_GRANT_TYPE)
    return grant_types


def ciba_metadata(request: HttpRequest) -> dict[str, Any]:
    """The CIBA members of the provider metadata, and those of the profile in force (FAPI-CIBA:
    RFC 8705 mTLS, RFC 9449 DPoP, the ID-token algorithms this server's keys can produce)."""
    data: dict[str, Any] = {
        "backchannel_authentication_endpoint": backchannel_authentication_endpoint(request),
        "backchannel_token_delivery_modes_supported": profile.delivery_modes(),
        "backchannel_user_code_parameter_supported": bool(ciba_settings.USER_CODE_SUPPORTED),
        "grant_types_supported": supported_grant_types(),
        # ciba.client_auth serves both endpoints (CIBA §7.1: the token endpoint's methods).
        "token_endpoint_auth_methods_supported": profile.client_auth_methods(),
        "token_endpoint_auth_signing_alg_values_supported": profile.assertion_algs_supported(),
        "id_token_signing_alg_values_supported": profile.jws_algs(id_token_algs_available()),
        # RFC 8705 §3.3: tokens are bound whenever a TLS terminator forwards a certificate.
        "tls_client_certificate_bound_access_tokens": bool(ciba_settings.MTLS_CERT_HEADER),
        "dpop_signing_alg_values_supported": profile.dpop_algs(),
    }
    registration = registration_endpoint(request)
    if registration:
        # RFC 8414 §2, OpenID Discovery §3: only while ciba.views.registration answers.
        data["registration_endpoint"] = registration
    # OIDC Core §8: pairwise subs per sector (ciba.subjects), as the site offers them.
    data["subject_types_supported"] = list(ciba_settings.SUBJECT_TYPES_SUPPORTED)
    # OIDC Discovery defaults it to false: the claims request (OIDC Core §5.5) is honoured.
    data["claims_parameter_supported"] = True
    data[LOGIN_HINT_TOKEN_TYPES] = login_hint_token_types()
    cancel = _cancel_path()
    if cancel:
        # An extension (the client withdraws its pending request), under its own clear name.
        data[CANCEL_ENDPOINT] = absolute_url(request, cancel)
    aliases = mtls_endpoint_aliases(request)
    if aliases:
        if cancel and "backchannel_authentication_endpoint" in aliases:
            aliases[CANCEL_ENDPOINT] = ciba_settings.MTLS_BASE_URL.rstrip("/") + cancel
        data["mtls_endpoint_aliases"] = aliases
    if acr_values := assurance.acr_values_supported():
        data["acr_values_supported"] = acr_values
    algs = profile.request_signing_algs()
    if algs:
        # Omitting the member is how §4 says "signed requests are not supported".
        data["backchannel_authentication_request_signing_alg_values_supported"] = algs
    types = rar.supported_types()
    if types:
        # RFC 9396 §10: the types a client may register and send (CIBA["AUTHORIZATION_DETAILS_TYPES"]).
        data["authorization_details_types_supported"] = types
    return data


def _cancel_path() -> str:
    """The cancel endpoint's path; empty when the site's URLconf does not route it (a site
    that includes only some of ``ciba.urls`` advertises nothing it does not serve)."""
    try:
        return reverse(CANCEL_URL_NAME)
    except NoReverseMatch:
        return ""


def _with_ciba_metadata(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if response.status_code != 200:
        return response
    data = json.loads(response.content)
    data.update(ciba_metadata(request))
    if "introspection_endpoint" in data:
        # ciba.views.introspection authenticates resource servers as the token endpoint
        # authenticates clients (ciba.client_auth), so the same methods and algorithms apply.
        data["introspection_endpoint_auth_methods_supported"] = data["token_endpoint_auth_methods_supported"]
        data["introspection_endpoint_auth_signing_alg_values_supported"] = data[
            "token_endpoint_auth_signing_alg_values_supported"
        ]
    extended = JsonResponse(data)
    for header, value in response.headers.items():
        if header.lower() not in ("content-length", "content-type"):
            extended[header] = value
    return extended


class CibaConnectDiscoveryInfoView(ConnectDiscoveryInfoView):
    """``/.well-known/openid-configuration`` with the CIBA members."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _with_ciba_metadata(request, super().get(request, *args, **kwargs))


class CibaOAuthServerMetadataView(OAuthServerMetadataView):
    """RFC 8414 ``/.well-known/oauth-authorization-server`` with the CIBA members and, with
    OpenID Connect on, the ``userinfo_endpoint`` and ``jwks_uri`` of the OpenID document (both
    registered RFC 8414 members): a relying party that discovers in OAuth mode (openid-client's
    ``oauth2`` algorithm) reads only this document, and without them cannot call userinfo."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().get(request, *args, **kwargs)
        if response.status_code != 200 or not oauth2_settings.OIDC_ENABLED:
            return _with_ciba_metadata(request, response)
        data = json.loads(response.content)
        userinfo = oauth2_settings.OIDC_USERINFO_ENDPOINT or self._get_endpoint_url(request, "user-info")
        for member, url in (
            ("userinfo_endpoint", userinfo),
            ("jwks_uri", self._get_endpoint_url(request, "jwks-info")),
        ):
            if url:
                data.setdefault(member, url)
        response.content = json.dumps(data).encode()
        return _with_ciba_metadata(request, response)
