"""Absolute URLs of this server's endpoints, built the way DOT builds its own.

Client assertions and request objects name the server in ``aud``, and discovery publishes
the same URLs, so all of them come from here: the host of ``OIDC_ISS_ENDPOINT`` when it is
set (the deployment's public name), otherwise the host of the request being served.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpRequest
from django.urls import reverse
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
    """What a client may put in ``aud`` to name this server (CIBA §7.1, §7.1.1)."""
    return [issuer(request), token_endpoint(request), backchannel_authentication_endpoint(request)]


def _unwrapped(request: Any) -> Any:
    """DOT accepts Django and oauthlib requests; a DRF ``Request`` wraps a Django one."""
    inner = getattr(request, "_request", None)
    return inner if isinstance(inner, HttpRequest) else request
