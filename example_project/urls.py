from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    # DOT's endpoints with CIBA-aware discovery, under DOT's namespace, then CIBA's own.
    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),
    # RFC 8414's metadata of the issuer http://host/o sits at the root, path inserted:
    # /.well-known/oauth-authorization-server/o.
    path("", include("ciba.well_known_urls")),
    # The authentication device's web page (the user approves or denies there).
    path("ciba/device/", include("ciba.device.urls")),
    # OpenAPI schema of the consent and device APIs.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The demo: checkout kiosk, its callback receiver, the site's login, the old phone URL.
    path("", include("example_project.demo.urls")),
]

# A PostgreSQL or Redis outage that reaches Django's last resort in any view (DOT's userinfo,
# discovery) is a JSON 503 temporarily_unavailable with Retry-After, not an HTML 500 page.
handler500 = "ciba.views.rendering.server_error"
