"""CIBA's own endpoints. Include under the same prefix as ``ciba.oauth_urls``::

path("o/", include("ciba.urls")),
"""

from django.urls import path

from .views.backchannel import BackchannelAuthenticationView

app_name = "ciba"

urlpatterns = [
    path(
        "backchannel-authentication/",
        BackchannelAuthenticationView.as_view(),
        name="backchannel-authentication",
    ),
]
