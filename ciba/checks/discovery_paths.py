"""The site's URLconf: whether RFC 8414 discovery finds this server's metadata.

An issuer with a path (``https://host/o``, DOT's URLs mounted under ``o/``) has its metadata at
``https://host/.well-known/oauth-authorization-server/o`` (RFC 8414 §3.1), at the site's root,
where only ``ciba.well_known_urls`` puts it. Without it, a relying party discovering in OAuth
mode (openid-client's ``oauth2`` algorithm) finds nothing, while OpenID Connect discovery,
which appends its suffix to the issuer, works: a gap no other test of the site would show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core import checks
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from oauth2_provider.settings import oauth2_settings

from ..views.well_known import IssuerMetadataView, metadata_path
from .codes import Codes

#: The suffix DOT's issuer is derived from when ``OIDC_ISS_ENDPOINT`` is not set.
_OIDC_DISCOVERY_SUFFIX = "/.well-known/openid-configuration"


@checks.register(checks.Tags.urls)
def check_metadata_location(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``ciba.W018``: the issuer has a path and its RFC 8414 location is not served by ciba."""
    issuer_path = _issuer_path()
    if not issuer_path:
        return []  # no path: the location is the suffix itself, wherever DOT's URLs are
    location = metadata_path(issuer_path)
    try:
        view_class = getattr(resolve(location).func, "view_class", None)
    except Resolver404:
        view_class = None
    if isinstance(view_class, type) and issubclass(view_class, IssuerMetadataView):
        return []
    return [
        checks.Warning(
            f"The issuer's authorization server metadata (RFC 8414 section 3.1) is not served at "
            f"{location}: relying parties that discover in OAuth mode (openid-client's oauth2 "
            "algorithm) cannot find this server.",
            hint='Add path("", include("ciba.well_known_urls")) to the root URLconf.',
            id=Codes.METADATA_LOCATION,
        )
    ]


def _issuer_path() -> str:
    """The path of the issuer identifier without any terminating ``/``; "" for none, or when the
    site serves no OpenID discovery to derive the issuer from (then there is nothing to find)."""
    if oauth2_settings.OIDC_ISS_ENDPOINT:
        return urlsplit(oauth2_settings.OIDC_ISS_ENDPOINT).path.rstrip("/")
    try:
        discovery = reverse("oauth2_provider:oidc-connect-discovery-info")
    except NoReverseMatch:
        return ""
    return discovery.removesuffix(_OIDC_DISCOVERY_SUFFIX).rstrip("/")
