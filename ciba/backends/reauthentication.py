"""The password re-entered at approval: the ``password`` level of ciba.assurance.

Verified through Django's ``authenticate`` (so LDAP or any other backend the site signs in
with works), for the signed-in user only. Attempts are counted per user in the shared cache
(the right password resets the count): a stolen session must not become a password-guessing
oracle, so after ``MAX_FAILURES`` wrong ones within ``FAILURE_WINDOW`` even the right one is
refused until the window ends.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.core.cache import cache
from django.utils import timezone

from .. import assurance
from ..assurance import Authentication
from ..conf import ciba_settings
from ..errors import InvalidAuthentication

#: Wrong passwords per user within ``FAILURE_WINDOW`` seconds before re-entry is refused.
MAX_FAILURES = 5
FAILURE_WINDOW = 900
FAILURES_KEY = "ciba:reauth-failures:"


def verify_password(http_request: Any, user: Any, password: Any) -> Authentication:
    """The ``password`` level, when ``password`` is the signed-in user's own."""
    if not ciba_settings.PASSWORD_REAUTHENTICATION:
        raise InvalidAuthentication("This server does not accept a password at approval: use a passkey.")
    if not isinstance(password, str) or not password or len(password) > 4096:
        raise InvalidAuthentication("Enter your password.")
    key = f"{FAILURES_KEY}{user.pk}"
    # The attempt is counted before the password is checked, atomically: parallel guesses each
    # take their own number, so no burst of them gets more than MAX_FAILURES checks.
    if _attempt(key) > MAX_FAILURES:
        raise InvalidAuthentication("Too many wrong passwords: wait a few minutes, or use a passkey.")
    django_request = getattr(http_request, "_request", http_request)
    verified = authenticate(django_request, username=user.get_username(), password=password)
    if verified is None or verified.pk != user.pk:
        raise InvalidAuthentication("That password is not right.")
    cache.delete(key)
    now = timezone.now()
    return Authentication(
        level=assurance.PASSWORD,
        amr=("pwd",),
        auth_time=now,
        evidence={"level": assurance.PASSWORD, "method": "password", "verified_at": now},
    )


def _attempt(key: str) -> int:
    """Count one more attempt in the window the first one opened; returns its number."""
    cache.add(key, 0, FAILURE_WINDOW)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: a new window
        cache.add(key, 1, FAILURE_WINDOW)
        return 1
