"""A site with its own application model adds CibaClientMixin and gets CIBA on it."""

import pytest
from django.apps import apps
from django.db import connection
from oauth2_provider.models import get_application_model

from ciba.models import AuthenticationRequest
from tests.conftest import basic_auth


def test_the_sites_model_is_the_application_model_and_ciba_points_at_it(db):
    model = get_application_model()
    assert model._meta.label == "siteapp.Application"
    assert AuthenticationRequest._meta.get_field("client").related_model is model
    tables = connection.introspection.table_names()
    assert "siteapp_application" in tables
    assert "ciba_application" not in tables  # the swapped-out model gets no table
    assert apps.get_model("ciba", "Application")._meta.swapped == "siteapp.Application"


@pytest.mark.django_db
def test_a_ciba_request_works_with_the_sites_model(client, alice, make_client):
    app, secret = make_client("poll", department="payments")
    response = client.post(
        "/o/backchannel-authentication/",
        "scope=openid&login_hint=alice",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    assert AuthenticationRequest.objects.get().client == app


def test_the_system_checks_accept_the_mixin(db):
    from ciba.checks import check_application_model

    assert check_application_model() == []
