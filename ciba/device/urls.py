"""The device page, its web app manifest and its service worker. Include it with::

    path("ciba/device/", include("ciba.device.urls")),

The service worker is served from here, not from ``STATIC_URL``, because a worker controls
only the pages under its own path: here its scope is the page itself.
"""

from django.urls import path

from . import views

app_name = "ciba_device"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.SignInView.as_view(), name="sign-in"),
    path("sign-in/passkey-options/", views.sign_in_passkey_options, name="sign-in-passkey-options"),
    path("sign-in/passkey/", views.sign_in_passkey, name="sign-in-passkey"),
    path("my-code/", views.my_code, name="my-code"),
    path("manifest.webmanifest", views.manifest, name="manifest"),
    path("sw.js", views.service_worker, name="service-worker"),
]
