"""CIBA's own endpoints. Include under the same prefix as ``ciba.oauth_urls``::

path("o/", include("ciba.urls")),
"""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .views.backchannel import BackchannelAuthenticationView
from .views.consent import AuthenticationRequestViewSet
from .views.devices import DeviceViewSet

app_name = "ciba"

router = SimpleRouter()
router.register("ciba/requests", AuthenticationRequestViewSet, basename="request")
router.register("ciba/devices", DeviceViewSet, basename="device")

urlpatterns = [
    path(
        "backchannel-authentication/",
        BackchannelAuthenticationView.as_view(),
        name="backchannel-authentication",
    ),
    path("", include(router.urls)),
]
