"""User codes (CIBA §7.1.2): setting one, and checking one a client relays.

A user code proves that whoever starts a request for this user knows something only the user
knows, so that knowing a login hint is not enough to push requests to their phone. Codes are
kept with Django's password hasher and compared in constant time (``check_password``); a run
of failures locks the code for a while, whatever code is tried next.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db.models import F
from django.utils import timezone

from .conf import ciba_settings
from .models import UserCode

#: Longest accepted code, in characters.
MAX_LENGTH = 64

_DUMMY: list[str] = []


class UnacceptableUserCode(ValueError):
    """A code a user may not choose; the message says why."""


def set_user_code(user: Any, code: str) -> UserCode:
    """Give ``user`` this code (replacing any other); failures and locks start over."""
    code = clean(code, user=user)
    row, _ = UserCode.objects.update_or_create(
        user=user, defaults={"code": make_password(code), "failed_attempts": 0, "locked_until": None}
    )
    return row


def clear_user_code(user: Any) -> bool:
    """Remove ``user``'s code; True if there was one."""
    return UserCode.objects.filter(user=user).delete()[0] > 0


def unlock(user: Any) -> None:
    UserCode.objects.filter(user=user).update(failed_attempts=0, locked_until=None)


def clean(code: str, *, user: Any = None) -> str:
    """The code as stored: NFC, between ``USER_CODE_MIN_LENGTH`` and 64 printable characters,
    and not the user's own username."""
    if not isinstance(code, str):
        raise UnacceptableUserCode("The user code must be text.")
    code = unicodedata.normalize("NFC", code)
    minimum = ciba_settings.USER_CODE_MIN_LENGTH
    if not minimum <= len(code) <= MAX_LENGTH:
        raise UnacceptableUserCode(f"The user code must be {minimum} to {MAX_LENGTH} characters long.")
    if any(unicodedata.category(ch).startswith(("C", "Z")) and ch != " " for ch in code):
        raise UnacceptableUserCode("The user code must hold only printable characters.")
    if user is not None and code.casefold() == str(user.get_username()).casefold():
        raise UnacceptableUserCode("The user code must not be the username.")
    return code


def has_user_code(user: Any) -> bool:
    return UserCode.objects.filter(user=user).exists()


def check_user_code(user: Any, code: str) -> bool:
    """True when ``code`` is ``user``'s code and the code is not locked; counts failures."""
    row = UserCode.objects.filter(user=user).first()
    if row is None:
        check_password(code, _dummy())  # the same cost as a real check: no timing tells who has one
        return False
    now = timezone.now()
    if row.locked_until is not None and row.locked_until > now:
        return False  # whatever the code: guessing must not go on while locked
    if check_password(unicodedata.normalize("NFC", code), row.code):
        if row.failed_attempts or row.locked_until:
            UserCode.objects.filter(pk=row.pk).update(failed_attempts=0, locked_until=None)
        return True
    UserCode.objects.filter(pk=row.pk).update(failed_attempts=F("failed_attempts") + 1)
    lockout = timedelta(seconds=ciba_settings.USER_CODE_LOCKOUT_SECONDS)
    UserCode.objects.filter(pk=row.pk, failed_attempts__gte=ciba_settings.USER_CODE_MAX_FAILURES).update(
        failed_attempts=0, locked_until=now + lockout
    )
    return False


def _dummy() -> str:
    if not _DUMMY:
        _DUMMY.append(make_password("ciba-no-user-code"))
    return _DUMMY[0]
