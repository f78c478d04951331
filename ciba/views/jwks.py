"""This server's JWK Set (``/.well-known/jwks.json``): DOT's view, serving ``ciba.signing``'s keys.

DOT's view publishes only its settings keys; this one adds the database's active, next and
retired keys, with the same CORS and caching headers (``OIDC_JWKS_MAX_AGE_SECONDS``: how long
relying parties may keep the set, and so how long a new key must be published before it signs).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import JwksInfoView

from ..signing import published_jwks


class CibaJwksInfoView(JwksInfoView):
    """``{"keys": [...]}`` of every published key; only public members (``ciba.signing``)."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = JsonResponse({"keys": published_jwks()})
        max_age = oauth2_settings.OIDC_JWKS_MAX_AGE_SECONDS
        response["Access-Control-Allow-Origin"] = "*"
        response["Cache-Control"] = (
            f"public, max-age={max_age}, stale-while-revalidate={max_age}, stale-if-error={max_age}"
        )
        return response
