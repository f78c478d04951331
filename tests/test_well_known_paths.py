"""RFC 8414 §3.1: the metadata of the issuer ``http://testserver/o`` is found where the
well-known suffix is inserted before the issuer's path, at the site's root
(``ciba.well_known_urls``), as openid-client discovers in OAuth mode; a location that is not
this issuer's describes no server (404); ``ciba.W018`` warns when the site does not serve it.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import include, path

from ciba.checks.codes import Codes
from ciba.checks.discovery_paths import check_metadata_location

ISSUER = "http://testserver/o"
LOCATION = "/.well-known/oauth-authorization-server/o"

#: A site that mounts ciba's URLs under o/ and forgot the root include (used as ROOT_URLCONF).
urlpatterns = [
    path("o/", include("ciba.oauth_urls", namespace="oauth2_provider")),
    path("o/", include("ciba.urls")),
]

needs_code = pytest.mark.skipif(
    not hasattr(Codes, "METADATA_LOCATION"), reason="ciba.W018 is not yet in ciba.checks.codes.Codes"
)


def test_the_path_inserted_location_serves_the_ciba_metadata_of_this_issuer(client, db):
    response = client.get(LOCATION)
    assert response.status_code == 200, response.content
    metadata = response.json()
    assert metadata["issuer"] == ISSUER
    # The same document as the one under o/: CIBA-aware, naming this server's endpoints.
    assert metadata["backchannel_authentication_endpoint"] == f"{ISSUER}/backchannel-authentication/"
    assert metadata["token_endpoint"] == f"{ISSUER}/token/"
    assert metadata == client.get("/o/.well-known/oauth-authorization-server").json()
    # Both discovery modes describe one issuer (OIDC Discovery appends its suffix instead).
    assert client.get("/o/.well-known/openid-configuration").json()["issuer"] == metadata["issuer"]


def test_the_location_follows_a_configured_issuer(client, db, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": "https://server.example/o/"}
    response = client.get(LOCATION)  # RFC 8414 §3.1: the terminating "/" is removed first
    assert response.status_code == 200, response.content
    assert response.json()["issuer"] == "https://server.example/o/"


@pytest.mark.parametrize(
    "elsewhere",
    [
        "/.well-known/oauth-authorization-server",  # the issuer has a path
        "/.well-known/oauth-authorization-server/elsewhere",
        "/.well-known/oauth-authorization-server/o/extra",
        # Under o/, DOT's view made an issuer of whatever path was asked.
        "/o/.well-known/oauth-authorization-server/elsewhere",
        "/o/.well-known/oauth-authorization-server/o",
    ],
)
def test_a_location_that_is_not_this_issuers_is_not_found(client, db, elsewhere):
    assert client.get(elsewhere).status_code == 404


@needs_code
def test_no_warning_when_the_root_urlconf_includes_the_well_known_urls(db):
    assert check_metadata_location() == []


@needs_code
def test_a_site_without_the_root_include_is_warned_with_w018(db, settings):
    settings.ROOT_URLCONF = __name__
    [warning] = check_metadata_location()
    assert warning.id == "ciba.W018" == Codes.METADATA_LOCATION
    assert LOCATION in warning.msg
    assert 'include("ciba.well_known_urls")' in warning.hint


@needs_code
def test_an_issuer_without_a_path_needs_no_root_include(db, settings: Any):
    settings.ROOT_URLCONF = __name__
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": "https://server.example"}
    assert check_metadata_location() == []
