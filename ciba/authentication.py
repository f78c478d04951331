"""A DRF authentication class for a site's own APIs that speaks both token schemes.

DOT's ``OAuth2Authentication`` already refuses a bound token without its certificate or DPoP
proof (``CibaValidator.validate_bearer_token`` decides for every DOT-validated token, and the
server accepts the ``DPoP`` scheme). This class adds what a DPoP client needs to hear back
(RFC 9449 §7.1): a ``DPoP`` challenge naming the accepted algorithms beside ``Bearer``, with
the error on the scheme the request used. One setting protects every view::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["ciba.authentication.SenderConstrainedAuthentication"],
    }
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.contrib.rest_framework import OAuth2Authentication

from .oauth.resource import challenge


class SenderConstrainedAuthentication(OAuth2Authentication):
    """``OAuth2Authentication`` with RFC 9449 challenges (``WWW-Authenticate: DPoP ...``), the
    same the userinfo endpoint answers (``ciba.oauth.resource.challenge``)."""

    def authenticate_header(self, request: Any) -> str:
        return challenge(
            request.META, getattr(request, "oauth2_error", None), realm=self.www_authenticate_realm
        )
