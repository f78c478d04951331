"""Composing the CIBA grant onto whatever OAuth/OIDC server class DOT ships."""

from __future__ import annotations

from typing import Any

from oauthlib.openid import Server as OpenIDServer

from ..constants import CIBA_GRANT_TYPE, DPOP_TOKEN_TYPE
from .grant import OpenIDCibaGrant
from .resource import DPoPTokenType


class CibaServerMixin:
    """Registers the CIBA grant on the token endpoint of the server it is mixed into.

    oauthlib's ``TokenEndpoint.grant_types`` is a plain dict, and adding to it after
    ``__init__`` is the extension point oauthlib and DOT document. Being a mixin (rather
    than a copy of oauthlib's server) keeps every grant a newer DOT server class adds.
    DOT's ``server_kwargs`` are deliberately not forwarded to the grant: their
    ``pre_token`` hook belongs to the device flow and fails on any other grant.
    The resource endpoint gets the ``DPoP`` authorization scheme (RFC 9449 §7) the same way.
    """

    def __init__(self, request_validator: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(request_validator, *args, **kwargs)
        self.ciba_grant = OpenIDCibaGrant(request_validator)
        self.grant_types[CIBA_GRANT_TYPE] = self.ciba_grant
        # Protected resources (DRF's OAuth2Authentication, DOT's views) accept the DPoP scheme;
        # oauthlib's userinfo endpoint validates with ``self.bearer`` whatever the scheme.
        # (``self.bearer`` is the userinfo endpoint's own handler, without DOT's token
        # generator and lifetime: tokens are minted by ``default_token_type``.)
        self.tokens[DPOP_TOKEN_TYPE] = self.bearer = DPoPTokenType(request_validator)


class CibaServer(CibaServerMixin, OpenIDServer):
    """oauthlib's OpenID Connect server with the CIBA grant: set it as ``OIDC_SERVER_CLASS``."""
