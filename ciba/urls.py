"""CIBA's own endpoints. Include under the same prefix as ``ciba.oauth_urls``::

path("o/", include("ciba.urls")),
"""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .views.automation import AutomatedApprovalView
from .views.backchannel import BackchannelAuthenticationView
from .views.blocks import ClientBlockViewSet
from .views.cancel import BackchannelCancelView
from .views.consent import AuthenticationRequestViewSet
from .views.devices import DeviceViewSet
from .views.login_hint_token import LoginHintTokenView
from .views.passkeys import PasskeyViewSet
from .views.user_code_api import UserCodeView

app_name = "ciba"

router = SimpleRouter()
router.register("ciba/requests", AuthenticationRequestViewSet, basename="request")
router.register("ciba/devices", DeviceViewSet, basename="device")
router.register("ciba/passkeys", PasskeyViewSet, basename="passkey")
router.register("ciba/blocks", ClientBlockViewSet, basename="block")

urlpatterns = [
    path(
        "backchannel-authentication/",
        BackchannelAuthenticationView.as_view(),
        name="backchannel-authentication",
    ),
    # An extension (CIBA Core has no cancel): the client withdraws its pending request.
    path(
        "backchannel-authentication/cancel/",
        BackchannelCancelView.as_view(),
        name="backchannel-authentication-cancel",
    ),
    path("ciba/user-code/", UserCodeView.as_view(), name="user-code"),
    # "Show my code" (ciba.hint_tokens): 404 unless CIBA["LOGIN_HINT_TOKEN_ISSUANCE"] is on.
    path("ciba/login-hint-token/", LoginHintTokenView.as_view(), name="login-hint-token"),
    # Off (404) unless CIBA["AUTOMATED_APPROVAL_SECRET"] is set: for conformance runs only.
    path(
        "ciba/automated-approval/<str:secret>/",
        AutomatedApprovalView.as_view(),
        name="automated-approval",
    ),
    path("", include(router.urls)),
]
