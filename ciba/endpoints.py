"""Absolute URLs of this server's endpoints, built the way DOT builds its own.

Client assertions and request objects name the server in ``aud``, and discovery publishes
the same URLs, so all of them come from here: the host of ``OIDC_ISS_ENDPOINT`` when it is
set (the deployment's public name), otherwise the host of the request being served.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from oauth2_provider.settings import oauth2_settings

from .conf import ciba_settings

BACKCHANNEL_URL_NAME = "ciba:backchannel-authentication"
TOKEN_URL_NAME = "oauth2_provider:token"


def issuer(request: Any) -> str:
    """The issuer identifier, for a Django, DRF or oauthlib request."""
    return oauth2_settings.oidc_issuer(_unwrapped(request))


def absolute_url(request: Any, path: str) -> str:
    base = oauth2_settings.OIDC_ISS_ENDPOINT
    if not base:
        request = _unwrapped(request)
        if isinstance(request, HttpRequest):
            return request.build_absolute_uri(path)
        base = request.uri  # an oauthlib request
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{path}"


def backchannel_authentication_endpoint(request: Any) -> str:
    if ciba_settings.BACKCHANNEL_AUTHENTICATION_ENDPOINT:
        return ciba_settings.BACKCHANNEL_AUTHENTICATION_ENDPOINT
    return absolute_url(request, reverse(BACKCHANNEL_URL_NAME))


def token_endpoint(request: Any) -> str:
    return absolute_url(request, reverse(TOKEN_URL_NAME))


def audiences(request: Any) -> list[str]:
    """What a client may put in ``aud`` to name this server (CIBA §7.1, §7.1.1), the mTLS
    aliases of its endpoints included (RFC 8705 §5: a client may use either name)."""
    names = [issuer(request), token_endpoint(request), backchannel_authentication_endpoint(request)]
    aliases = mtls_endpoint_aliases(request)
    return names + [
        aliases[k] for k in ("token_endpoint", "backchannel_authentication_endpoint") if k in aliases
    ]


#: Endpoints a client may call over mutual TLS, by their discovery metadata names.
MTLS_ENDPOINTS = {
    "token_endpoint": TOKEN_URL_NAME,
    "backchannel_authentication_endpoint": BACKCHANNEL_URL_NAME,
    "userinfo_endpoint": "oauth2_provider:user-info",
    "introspection_endpoint": "oauth2_provider:introspect",
    "revocation_endpoint": "oauth2_provider:revoke-token",
}


def mtls_endpoint_aliases(request: Any) -> dict[str, str]:
    """RFC 8705 §5: where the endpoints answer with client certificates, when that is another
    host (``MTLS_BASE_URL``); empty when the same URLs serve both."""
    base = ciba_settings.MTLS_BASE_URL.rstrip("/")
    if not base:
        return {}
    aliases = {}
    for name, url_name in MTLS_ENDPOINTS.items():
        try:
            aliases[name] = base + reverse(url_name)
        except NoReverseMatch:
            continue
    return aliases


def token_endpoint_urls(request: Any) -> list[str]:
    """Every URL naming the token endpoint (a DPoP proof's ``htu`` may use any of them)."""
    return _names_of(request, token_endpoint(request), "token_endpoint")


def backchannel_endpoint_urls(request: Any) -> list[str]:
    """Every URL naming the backchannel endpoint (a DPoP proof's ``htu`` may use any of them)."""
    return _names_of(
        request, backchannel_authentication_endpoint(request), "backchannel_authentication_endpoint"
    )


def _names_of(request: Any, published: str, metadata_name: str) -> list[str]:
    """The published URL, its mTLS alias, and the URL the request itself was sent to."""
    urls = [published]
    alias = mtls_endpoint_aliases(request).get(metadata_name)
    if alias:
        urls.append(alias)
    urls.extend(url for url in request_urls(request) if url not in urls)
    return urls


def request_urls(request: Any) -> list[str]:
    """The absolute URL a Django, DRF or oauthlib request was sent to, as the client named it
    (a DPoP proof's ``htu``): from the request's own scheme and host, and from the public
    origin of ``OIDC_ISS_ENDPOINT`` when that is set. DOT hands oauthlib only the path."""
    request = _unwrapped(request)
    if isinstance(request, HttpRequest):
        own = request.build_absolute_uri()
        path = request.get_full_path()
    else:
        path = str(getattr(request, "uri", "") or "")
        if "://" in path:
            own = path
            path = urlsplit(path).path
        else:
            meta = getattr(request, "headers", {}) or {}
            proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
            secure = bool(proxy_header) and meta.get(proxy_header[0]) == proxy_header[1]
            scheme = "https" if secure else str(meta.get("wsgi.url_scheme", "http"))
            host = meta.get("HTTP_HOST") or meta.get("SERVER_NAME", "")
            own = f"{scheme}://{host}{path}"
    urls = [own]
    if oauth2_settings.OIDC_ISS_ENDPOINT:
        public = absolute_url(request, path)
        if public not in urls:
            urls.append(public)
    return urls


def _unwrapped(request: Any) -> Any:
    """DOT accepts Django and oauthlib requests; a DRF ``Request`` wraps a Django one."""
    inner = getattr(request, "_request", None)
    return inner if isinstance(inner, HttpRequest) else request
