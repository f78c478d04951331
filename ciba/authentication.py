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

from .profile import dpop_algs


class SenderConstrainedAuthentication(OAuth2Authentication):
    """``OAuth2Authentication`` with RFC 9449 challenges (``WWW-Authenticate: DPoP ...``)."""

    def authenticate_header(self, request: Any) -> str:
        error = dict(getattr(request, "oauth2_error", {}) or {})
        used_dpop = (request.META.get("HTTP_AUTHORIZATION") or "").split(" ")[0].lower() == "dpop"
        dpop = {"algs": " ".join(dpop_algs()), **(error if used_dpop else {})}
        bearer = {"realm": self.www_authenticate_realm, **({} if used_dpop else error)}
        return f"DPoP {self._dict_to_string(dpop)}, Bearer {self._dict_to_string(bearer)}"
