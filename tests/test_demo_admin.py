"""The demo's admin: a customer's phone number and IBAN are set on the user's own page, stored
normalised, so a kiosk finds the customer by either (docs/integration.md, "Finding the user")."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from example_project.demo.models import Profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "root-password-123")
    client.force_login(admin)
    return client


def change_form(user, **profile: str) -> dict[str, str]:
    return {
        "username": user.username,
        "email": user.email,
        "date_joined_0": "2026-12-07",
        "date_joined_1": "10:00:00",
        "is_active": "on",
        "profile-TOTAL_FORMS": "1",
        "profile-INITIAL_FORMS": "0",
        "profile-MIN_NUM_FORMS": "0",
        "profile-MAX_NUM_FORMS": "1",
        "profile-0-user": str(user.pk),
        **{f"profile-0-{name}": value for name, value in profile.items()},
    }


def test_the_users_page_shows_the_customer_profile(staff):
    user = get_user_model().objects.create_user("erin", "erin@example.com", "x")
    page = staff.get(f"/admin/auth/user/{user.pk}/change/")
    assert page.status_code == 200
    assert b'name="profile-0-phone_number"' in page.content
    assert b'name="profile-0-account_iban"' in page.content


def test_a_phone_and_iban_saved_there_are_stored_normalised(staff):
    user = get_user_model().objects.create_user("erin", "erin@example.com", "x")
    answer = staff.post(
        f"/admin/auth/user/{user.pk}/change/",
        change_form(user, phone_number="+44 (0)20 7946 0123", account_iban="gb82 west 1234 5698 7654 32"),
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    profile = Profile.objects.get(user=user)
    assert (profile.phone_number, profile.account_iban) == ("+442079460123", "GB82WEST12345698765432")


def test_a_wrong_iban_is_refused_on_the_page_and_nothing_is_stored(staff):
    user = get_user_model().objects.create_user("erin", "erin@example.com", "x")
    answer = staff.post(
        f"/admin/auth/user/{user.pk}/change/",
        change_form(user, phone_number="", account_iban="GB00 WEST 1234 5698 7654 32"),
    )
    assert answer.status_code == 200
    assert b"Not a valid account iban" in answer.content
    assert not Profile.objects.filter(user=user).exists()
