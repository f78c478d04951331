from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from tests.resource_views import AccountsView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),
    # RFC 8414 §3.1: the metadata of the issuer http://testserver/o, at the site's root.
    path("", include("ciba.well_known_urls")),
    # The authentication device's web page (the user approves or denies there).
    path("ciba/device/", include("ciba.device.urls")),
    # OpenAPI schema of the consent and device APIs.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # A site's own API behind ciba.authentication.SenderConstrainedAuthentication.
    path("api/accounts/", AccountsView.as_view(), name="accounts"),
    path("", include("example_project.demo.urls")),
]

handler500 = "ciba.views.rendering.server_error"
