"""The user's standard claims (OIDC Core §5.1) and the scope that releases each (§5.4).

``CIBA["USER_CLAIMS_CLASS"]`` names the class (default ``UserClaims``); ``CibaValidator`` hands
it to DOT's own claim machinery: its ``claim_scopes`` join DOT's ``oidc_claim_scope``, its
``claims(user)`` become DOT's ``get_additional_claims``, so DOT releases a claim only when the
token's scopes include the claim's scope, in the ID token and at userinfo alike, and lists every
name in discovery's ``claims_supported``. A claim whose value is empty (``None``, ``""``, an
empty list or object) is left out: OIDC Core §5.3.2 says to omit what the server has no value
for, rather than answer ``""``.

A site with its own fields, or a profile model, subclasses it::

    class SiteClaims(UserClaims):
        claim_scopes = {
            **UserClaims.claim_scopes,
            "phone_number": "phone",
            "email_verified": "email",
        }

        def claims(self, user):
            return {
                **super().claims(user),
                "phone_number": user.profile.phone,
                "email_verified": user.profile.email_confirmed,
            }

and sets ``CIBA["USER_CLAIMS_CLASS"] = "site.claims.SiteClaims"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["UserClaims"]


class UserClaims:
    """The default mapping, from Django's user model (``AbstractUser`` or any model with the
    same fields; a missing field gives no claim).

    ``email_verified`` is not released: Django's user model does not record whether an
    address was verified, and a relying party reading ``email_verified`` (or its absence) as
    "verified" would trust an address nobody checked. A site that verifies addresses says
    how it knows, by adding the claim in a subclass as the module docstring shows.
    """

    #: Which scope releases each claim ``claims()`` can return (OIDC Core §5.4). A name not
    #: listed is never released; the names are published in ``claims_supported``.
    claim_scopes: ClassVar[Mapping[str, str]] = {
        "name": "profile",
        "given_name": "profile",
        "family_name": "profile",
        "preferred_username": "profile",
        "email": "email",
    }

    def claims(self, user: Any) -> dict[str, Any]:
        """The user's value of each claim in ``claim_scopes`` (empty values are dropped later).

        Called at most once per token or userinfo request, and only when the granted scopes
        release one of these claims, so a subclass may read a related model here.
        """
        full_name = getattr(user, "get_full_name", None)
        return {
            "name": full_name() if callable(full_name) else "",
            "given_name": getattr(user, "first_name", ""),
            "family_name": getattr(user, "last_name", ""),
            "preferred_username": user.get_username(),
            "email": getattr(user, user.get_email_field_name(), ""),
        }
