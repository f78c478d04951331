"""DOT's URLconf with the discovery views replaced by CIBA-aware ones, the token view
replaced by one that keeps CIBA credentials out of error reports, and the JWK Set by one that
publishes this server's database keys too (``ciba.signing``), and introspection by one that
shows what a token is bound to (``cnf``).

Include it *instead of* ``oauth2_provider.urls``, under DOT's namespace, so that DOT's
own ``reverse("oauth2_provider:...")`` calls keep working::

    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),

Including DOT's URLconf as well would register the namespace twice (``urls.W005``).
"""

from django.urls import path, re_path
from oauth2_provider import urls as dot_urls

from .oauth.view import CibaTokenView
from .views.discovery import CibaConnectDiscoveryInfoView, CibaOAuthServerMetadataView
from .views.introspection import CibaIntrospectTokenView
from .views.jwks import CibaJwksInfoView

app_name = "oauth2_provider"

_OVERRIDDEN = {
    "oidc-connect-discovery-info",
    "oauth-server-metadata",
    "oauth-server-metadata-issuer",
    "token",
    "jwks-info",
    "introspect",
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
    path(".well-known/jwks.json", CibaJwksInfoView.as_view(), name="jwks-info"),
    path("introspect/", CibaIntrospectTokenView.as_view(), name="introspect"),
] + [pattern for pattern in dot_urls.urlpatterns if getattr(pattern, "name", None) not in _OVERRIDDEN]
