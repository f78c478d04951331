"""Checking the ``user_code`` a client relays from the user (CIBA §7.1.2)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser


class BaseUserCodeVerifier:
    """Interface: ``verify(*, user, user_code, client)`` returns True when the code is the user's.

    Implementations keep user codes hashed and compare in constant time (for example a
    per-user PIN checked with ``django.contrib.auth.hashers.check_password``), and should
    rate-limit failures per user.
    """

    def verify(self, *, user: AbstractBaseUser, user_code: str, client: Any) -> bool:
        raise NotImplementedError


class UnconfiguredUserCodeVerifier(BaseUserCodeVerifier):
    """Default: there is no user-code store, so no code is ever correct.

    User codes are site data (where users set them is the site's business), so ciba cannot
    ship a working default. ``USER_CODE_SUPPORTED = True`` with this class is reported by
    the system check ``ciba.E011``; should it run anyway, every code is refused rather than
    every code accepted.
    """

    def verify(self, *, user: AbstractBaseUser, user_code: str, client: Any) -> bool:
        return False
