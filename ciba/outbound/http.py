"""The hardened HTTP session for every outbound call, and a bounded JSON GET.

Every such URL is attacker-influenced (a client registers it), so requests go through
requests-hardened: the host is resolved once, private/loopback/link-local addresses are
refused, and the connection is pinned to the checked address (no DNS rebinding). Redirects
are never followed and responses are read up to a size limit. The URL policy of
``ciba.outbound.policy`` (https only, no credentials) is applied again at call time, because
settings can change after a client was registered.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from django.core.exceptions import ValidationError
from requests_hardened import Config, HTTPSession

from ..conf import ciba_settings
from .policy import validate_outbound_url

USER_AGENT = "django-ciba"


class OutboundError(Exception):
    """A client URL could not be called or did not answer usefully; the message is safe to show."""


def session(*, allow_private: bool | None = None) -> requests.Session:
    """A hardened session; ``allow_private`` defaults to ``CALLBACK_ALLOW_PRIVATE_NETWORKS``."""
    if allow_private is None:
        allow_private = ciba_settings.CALLBACK_ALLOW_PRIVATE_NETWORKS
    return HTTPSession(
        Config(
            ip_filter_enable=not allow_private,
            ip_filter_allow_loopback_ips=allow_private,
            never_redirect=True,
            default_timeout=(ciba_settings.CALLBACK_CONNECT_TIMEOUT, ciba_settings.CALLBACK_READ_TIMEOUT),
            user_agent_override=USER_AGENT,
        )
    )


def get_json(url: str, *, max_bytes: int = 64 * 1024) -> Any:
    """GET a JSON document from a client-registered URL, or raise ``OutboundError``."""
    try:
        validate_outbound_url(url)
    except ValidationError as exc:
        raise OutboundError(f"URL refused: {' '.join(exc.messages)}") from None
    try:
        with (
            session() as http,
            http.get(url, stream=True, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise OutboundError(f"HTTP {response.status_code} from {url}")
            body = response.raw.read(max_bytes + 1, decode_content=True)
    except requests.RequestException as exc:
        raise OutboundError(f"Could not fetch {url}: {type(exc).__name__}") from None
    if len(body) > max_bytes:
        raise OutboundError(f"Response from {url} is larger than {max_bytes} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise OutboundError(f"Response from {url} is not JSON") from None
