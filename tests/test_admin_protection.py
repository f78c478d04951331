"""The admin's view of the protections of issue 27: blocks, reported and cancelled requests, and
a client's subject type with its sector identifier document checked on save."""

import pytest
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model

from ciba import services
from ciba.models import AuthenticationRequest, ClientBlock
from tests.test_admin import ADD_URL, form_data


@pytest.fixture
def staff(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def pending(app, user, message="X"):
    return services.create_request(
        expires_in=120,
        client=app,
        user=user,
        hint_kind="login_hint",
        scope="openid",
        interval=5,
        binding_message=message,
    )


def test_the_client_list_counts_reported_requests_and_blocks_per_client(
    staff, alice, make_client, no_user_limits
):
    shop, _ = make_client("poll", name="Corner Shop")
    quiet, _ = make_client("poll", name="Quiet Client")
    bob = get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    services.report(pending(shop, alice), user=alice, block=True)
    services.report(pending(shop, bob), user=bob, block=False)
    services.deny(pending(quiet, alice), user=alice)
    page = staff.get("/admin/ciba/application/").content.decode()
    assert "reported requests" in page.lower() and "blocked by users" in page.lower()
    assert f'?client__id__exact={shop.pk}&amp;reported=yes">2</a>' in page
    assert f'?client__id__exact={shop.pk}">1</a>' in page
    # The linked request list shows exactly the reported ones.
    reported = staff.get(f"/admin/ciba/authenticationrequest/?client__id__exact={shop.pk}&reported=yes")
    assert reported.status_code == 200
    assert reported.context["cl"].result_count == 2
    unreported = staff.get("/admin/ciba/authenticationrequest/?reported=no")
    assert unreported.context["cl"].result_count == 1


def test_the_request_admin_shows_and_filters_the_cancel_reason(staff, alice, make_client, no_user_limits):
    app, _ = make_client("poll")
    ar = pending(app, alice)
    services.cancel(ar, reason=AuthenticationRequest.CancelReason.CLIENT)
    pending(app, alice)
    listing = staff.get("/admin/ciba/authenticationrequest/?cancel_reason__exact=client")
    assert listing.context["cl"].result_count == 1
    detail = staff.get(f"/admin/ciba/authenticationrequest/{ar.pk}/change/").content.decode()
    assert "Cancelled by the client" in detail and "reported by the user at" in detail.lower()


def test_blocks_are_listed_searchable_and_lifted_by_deleting(staff, alice, make_client):
    app, _ = make_client("poll", name="Corner Shop")
    block = ClientBlock.objects.create(user=alice, client=app)
    listing = staff.get("/admin/ciba/clientblock/?q=Corner")
    assert listing.status_code == 200 and listing.context["cl"].result_count == 1
    assert staff.get("/admin/ciba/clientblock/?q=nobody").context["cl"].result_count == 0
    change = staff.get(f"/admin/ciba/clientblock/{block.pk}/change/")
    assert change.status_code == 200
    assert set(change.context["adminform"].form.fields) == set()  # nothing edited in place
    staff.post(f"/admin/ciba/clientblock/{block.pk}/delete/", {"post": "yes"})
    assert not ClientBlock.objects.exists()


def test_staff_add_a_block_by_raw_ids(staff, alice, make_client):
    app, _ = make_client("poll")
    page = staff.get("/admin/ciba/clientblock/add/").content.decode()
    assert "vForeignKeyRawIdAdminField" in page
    response = staff.post("/admin/ciba/clientblock/add/", {"user": alice.pk, "client": app.pk})
    assert response.status_code == 302
    assert ClientBlock.objects.get().client == app


def test_a_pairwise_client_with_a_sector_document_that_vouches_for_it_is_saved(staff, json_server):
    json_server.documents["/sector.json"] = ["https://kiosk.example.com/cb"]
    response = staff.post(
        ADD_URL,
        form_data(subject_type="pairwise", sector_identifier_uri=json_server.url("/sector.json")),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = get_application_model().objects.get(client_id="kiosk-1")
    assert saved.subject_type == "pairwise" and json_server.hits["/sector.json"] == 1


def test_a_sector_document_that_does_not_list_the_client_is_refused_next_to_the_field(staff, json_server):
    json_server.documents["/sector.json"] = ["https://elsewhere.example.net/cb"]
    response = staff.post(
        ADD_URL,
        form_data(subject_type="pairwise", sector_identifier_uri=json_server.url("/sector.json")),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["sector_identifier_uri"]
    assert not get_application_model().objects.filter(client_id="kiosk-1").exists()
