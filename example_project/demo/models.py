"""The demo bank's own record of each customer: what a kiosk may know them by besides their
username and e-mail (docs/integration.md, "Finding the user").

A site keeps such identifiers where it already keeps them; ciba only needs to be told the field
path from the user model (``profile__phone_number``) and how to normalise what a client typed.
Both columns are stored in the normalised form (E.164, compact IBAN) and are unique, so each has
the index a ``login_hint`` lookup needs (``ciba.W023`` checks it) and names at most one person.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ciba import identifiers


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    #: E.164: "+" and at most 15 digits.
    phone_number = models.CharField(max_length=16, unique=True, null=True, blank=True)
    #: Compact upper-case IBAN: at most 34 characters (ISO 13616).
    account_iban = models.CharField("account IBAN", max_length=34, unique=True, null=True, blank=True)

    class Meta:
        verbose_name = "customer profile"

    def __str__(self) -> str:
        return f"Profile of {self.user}"

    def clean(self) -> None:
        """Store each identifier in the form a normalised login_hint is compared with."""
        errors = {}
        for name in IDENTIFIERS:
            try:
                setattr(self, name, normalised(name, getattr(self, name)))
            except ValidationError as error:
                errors[name] = error
        if errors:
            raise ValidationError(errors)


#: Each identifier column, its normaliser and an example of a valid written form.
IDENTIFIERS = {
    "phone_number": (identifiers.phone_number, "+44 20 7946 0123"),
    "account_iban": (identifiers.iban, "GB82 WEST 1234 5698 7654 32"),
}


def normalised(name: str, value: str | None) -> str | None:
    """``value`` of identifier ``name`` as stored (None when empty); why it is refused if invalid.

    Forms call it before the column's length is checked: people write numbers longer than their
    normal form ("+44 (0)20 7946 0123")."""
    if not value:
        return None
    normalise, example = IDENTIFIERS[name]
    result = normalise(value)
    if result is None:
        raise ValidationError(f"Not a valid {name.replace('_', ' ')} (for example {example}).")
    return result
