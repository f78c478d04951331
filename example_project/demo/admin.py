"""The demo bank's customer profile in the admin, on each user's own page.

A kiosk finds a customer by phone number or IBAN only if the profile holds them
(``LOGIN_HINT_IDENTIFIERS``), so the admin who registers a customer must be able to set them
where they edit the user, written as people write them and stored in the normalised form a
``login_hint`` is compared with.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .models import IDENTIFIERS, Profile, normalised


class ProfileForm(forms.ModelForm):
    """Normalises each identifier before the column's length is checked: a written phone number
    ("+44 (0)20 7946 0123") is longer than the E.164 form stored."""

    class Meta:
        model = Profile
        fields = list(IDENTIFIERS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in IDENTIFIERS:
            self.fields[name].max_length = 64
            self.fields[name].widget.attrs["maxlength"] = "64"
            self.fields[name].validators = []  # the column's length applies to the normal form

    def _clean_identifier(self, name: str) -> str | None:
        return normalised(name, self.cleaned_data.get(name))

    def clean_phone_number(self) -> str | None:
        return self._clean_identifier("phone_number")

    def clean_account_iban(self) -> str | None:
        return self._clean_identifier("account_iban")


class ProfileInline(admin.StackedInline):
    model = Profile
    form = ProfileForm
    extra = 1
    max_num = 1


User = get_user_model()
_registered = admin.site._registry.get(User)
if isinstance(_registered, UserAdmin):
    # The stock (or a site's) user admin, with the profile added: the demo changes nothing else.
    admin.site.unregister(User)
    admin.site.register(
        User, type("DemoUserAdmin", (type(_registered),), {"inlines": [*_registered.inlines, ProfileInline]})
    )
