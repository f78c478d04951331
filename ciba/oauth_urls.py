"""DOT's URLconf with the discovery views replaced by CIBA-aware ones, and the token view
replaced by one that keeps CIBA credentials out of error reports.

Include it *instead of* ``oauth2_provider.urls``, under DOT's namespace, so that DOT's
own ``reverse("oauth2_provider:...")`` calls keep working::

    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),

Including DOT's URLconf as well would register the namespace twice (``urls.W005``).
"""

from django.urls import path, re_path
from oauth2_provider import urls as dot_urls

from .views.discovery import CibaConnectDiscoveryInfoView, CibaOAuthServerMetadataView
from .views.token import CibaTokenView

app_name = "oauth2_provider"

_OVERRIDDEN = {
    "oidc-connect-discovery-info",
    "oauth-server-metadata",
    "oauth-server-metadata-issuer",
    "token",
}

urlpatterns = [
    path("token/", CibaTokenView.as_view(), name="token"),
    re_path(
        r"^\.well-known/openid-configuration/?$",
        CibaConnectDiscoveryInfoView.as_view(),
        name="oidc-connect-discovery-info",
    ),
    path(
        ".well-known/oauth-authorization-server",
        CibaOAuthServerMetadataView.as_view(),
        name="oauth-server-metadata",
    ),
    path(
        ".well-known/oauth-authorization-server/<path:issuer_path>",
        CibaOAuthServerMetadataView.as_view(),
        name="oauth-server-metadata-issuer",
    ),
] + [pattern for pattern in dot_urls.urlpatterns if getattr(pattern, "name", None) not in _OVERRIDDEN]
