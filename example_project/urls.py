from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    # DOT's endpoints with CIBA-aware discovery, under DOT's namespace, then CIBA's own.
    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),
    # OpenAPI schema of the consent and device APIs.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The demo: checkout kiosk, phone, and the kiosk's callback receiver.
    path("", include("example_project.demo.urls")),
]
