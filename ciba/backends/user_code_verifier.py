"""Checking the ``user_code`` a client relays from the user (CIBA §7.1.2)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from .. import user_codes
from ..errors import InvalidUserCode


class BaseUserCodeVerifier:
    """Interface: ``verify(*, user, user_code, client)`` returns True when the code is the
    user's; ``required_for(*, user, client)`` says whether a request without a code is
    ``missing_user_code`` (default: always, for clients that registered user codes).

    Implementations keep user codes hashed, compare in constant time and budget failures per
    client (for one user, and for all users together) rather than per user, as
    ``StoredUserCodeVerifier`` does: a count per user lets any client lock the user's code
    for every other. A verifier may raise ``ciba.errors.InvalidUserCode`` itself to say why
    a code was refused unchecked.
    """

    def verify(self, *, user: AbstractBaseUser, user_code: str, client: Any) -> bool:
        raise NotImplementedError

    def required_for(self, *, user: AbstractBaseUser, client: Any) -> bool:
        return True


class StoredUserCodeVerifier(BaseUserCodeVerifier):
    """Default: the code the user set through the device API (or an admin set for them),
    stored hashed (``ciba.UserCode``), wrong codes budgeted per client (``USER_CODE_*``,
    ``ciba.user_codes``).

    A user who never set a code is not asked for one (CIBA §7.1.2 lets an OP let some users
    omit it): their requests proceed without, and a code sent for them is wrong. A site that
    wants every user to have a code overrides ``required_for`` to return True.
    """

    def verify(self, *, user: AbstractBaseUser, user_code: str, client: Any) -> bool:
        verdict = user_codes.verify(user, user_code, client=client)
        if verdict is user_codes.Verdict.REFUSED:
            # The client's own budget is spent: saying so tells it nothing about the code.
            raise InvalidUserCode("Too many wrong user codes from this client; try again later.")
        return verdict is user_codes.Verdict.RIGHT

    def required_for(self, *, user: AbstractBaseUser, client: Any) -> bool:
        return user_codes.has_user_code(user)


class UnconfiguredUserCodeVerifier(BaseUserCodeVerifier):
    """Refuses every code: for sites that turn user codes on but keep them elsewhere and have
    not plugged in their verifier yet (``ciba.E011`` reports it)."""

    def verify(self, *, user: AbstractBaseUser, user_code: str, client: Any) -> bool:
        return False
