"""DOT's URLconf with the discovery views replaced by CIBA-aware ones, the token view
replaced by one that keeps CIBA credentials out of error reports, and the JWK Set by one that
publishes this server's database keys too (``ciba.signing``), introspection by one that
shows what a token is bound to (``cnf``), userinfo by one that tells a DPoP client how to
retry (``DPoP`` challenges and nonces, RFC 9449), and revocation by one that challenges only a
client that authenticated with Basic (RFC 6749 §5.2).

Include it *instead of* ``oauth2_provider.urls``, under DOT's namespace, so that DOT's
own ``reverse("oauth2_provider:...")`` calls keep working; and ``ciba.well_known_urls`` at the
site's root, where RFC 8414 puts the metadata of an issuer with a path::

    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),
    path("", include("ciba.well_known_urls")),

Including DOT's URLconf as well would register the namespace twice (``urls.W005``).

DOT's own dynamic registration (``dcr-register``) is replaced by ``register/`` and
``register/<client_id>/`` (``ciba.views.registration``: RFC 7591 and RFC 7592 with the CIBA
metadata), which answer 404 unless ``CIBA["REGISTRATION_ENABLED"]``. DOT's self-service
application pages (``applications/…``, ``authorized_tokens/…``), which any signed-in user
could reach, are mounted only with ``CIBA["DOT_APPLICATION_VIEWS"]``: that setting is read
once, when this URLconf is imported, so changing it needs a restart (tests reload the URLconf).
"""

from django.urls import path, re_path
from oauth2_provider import urls as dot_urls

from .conf import ciba_settings
from .oauth.view import CibaRevokeTokenView, CibaTokenView
from .views.discovery import CibaConnectDiscoveryInfoView, CibaOAuthServerMetadataView
from .views.introspection import CibaIntrospectTokenView
from .views.jwks import CibaJwksInfoView
from .views.registration import ClientConfigurationView, ClientRegistrationView
from .views.userinfo import CibaUserInfoView
from .views.well_known import IssuerMetadataView

app_name = "oauth2_provider"

_OVERRIDDEN = {
    "oidc-connect-discovery-info",
    "oauth-server-metadata",
    "oauth-server-metadata-issuer",
    "token",
    "jwks-info",
    "introspect",
    "user-info",
    "revoke-token",
    "dcr-register",
    "dcr-register-management",
}
#: DOT's self-service pages: its application CRUD for signed-in users and their token list.
_APPLICATION_VIEWS = {pattern.name for pattern in dot_urls.management_urlpatterns}
_LEFT_OUT = _OVERRIDDEN if ciba_settings.DOT_APPLICATION_VIEWS else _OVERRIDDEN | _APPLICATION_VIEWS

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
    # RFC 8414 §3.1's location is at the site's root (``ciba.well_known_urls``); under this
    # prefix only a request that happens to name this issuer's location is answered, where
    # DOT's view would describe an issuer made of whatever path was asked.
    path(
        ".well-known/oauth-authorization-server/<path:issuer_path>",
        IssuerMetadataView.as_view(),
        name="oauth-server-metadata-issuer",
    ),
    path(".well-known/jwks.json", CibaJwksInfoView.as_view(), name="jwks-info"),
    path("introspect/", CibaIntrospectTokenView.as_view(), name="introspect"),
    path("userinfo/", CibaUserInfoView.as_view(), name="user-info"),
    path("revoke_token/", CibaRevokeTokenView.as_view(), name="revoke-token"),
    path("register/", ClientRegistrationView.as_view(), name="client-registration"),
    path(
        "register/<str:client_id>/",
        ClientConfigurationView.as_view(),
        name="client-registration-management",
    ),
] + [pattern for pattern in dot_urls.urlpatterns if getattr(pattern, "name", None) not in _LEFT_OUT]
