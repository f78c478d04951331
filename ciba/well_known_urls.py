"""The well-known URLs RFC 8414 places at the site's root, outside the ``o/`` prefix.

An issuer with a path (``https://host/o``, the issuer of DOT's URLs mounted under ``o/``) has its
authorization server metadata at ``https://host/.well-known/oauth-authorization-server/o``
(RFC 8414 §3.1). Include this URLconf at the root of the site::

    path("", include("ciba.well_known_urls")),

beside ``ciba.oauth_urls`` and ``ciba.urls`` under ``o/``. Only this issuer's location answers
(``ciba.views.well_known``); the system check ``ciba.W018`` warns while it does not resolve.

OpenID Connect discovery needs nothing here: it appends ``/.well-known/openid-configuration``
to the issuer (OIDC Discovery §4), a URL ``ciba.oauth_urls`` already serves under ``o/``.
"""

from django.urls import path

from .views.well_known import IssuerMetadataView

app_name = "ciba_well_known"

urlpatterns = [
    # An issuer without a path (``https://host``) has its metadata at the suffix itself.
    path(
        ".well-known/oauth-authorization-server",
        IssuerMetadataView.as_view(),
        name="oauth-authorization-server",
    ),
    path(
        ".well-known/oauth-authorization-server/<path:issuer_path>",
        IssuerMetadataView.as_view(),
        name="oauth-authorization-server-issuer",
    ),
]
