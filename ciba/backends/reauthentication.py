"""The password re-entered at approval: the ``password`` level of ciba.assurance.

Verified through Django's ``authenticate`` (so LDAP or any other backend the site signs in
with works), for the signed-in user only. Wrong passwords are counted per user in the shared
cache: a stolen session must not become a password-guessing oracle.
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


def verify_password(http_request: Any, user: Any, password: Any) -> Authentication:
    """The ``password`` level, when ``password`` is the signed-in user's own."""
    if not ciba_settings.PASSWORD_REAUTHENTICATION:
        raise InvalidAuthentication("This server does not accept a password at approval: use a passkey.")
    if not isinstance(password, str) or not password or len(password) > 4096:
        raise InvalidAuthentication("Enter your password.")
    key = f"ciba:reauth-failures:{user.pk}"
    if (cache.get(key) or 0) >= MAX_FAILURES:
        raise InvalidAuthentication("Too many wrong passwords: wait a few minutes, or use a passkey.")
    django_request = getattr(http_request, "_request", http_request)
    verified = authenticate(django_request, username=user.get_username(), password=password)
    if verified is None or verified.pk != user.pk:
        cache.add(key, 0, FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, FAILURE_WINDOW)
        raise InvalidAuthentication("That password is not right.")
    cache.delete(key)
    now = timezone.now()
    return Authentication(
        level=assurance.PASSWORD,
        amr=("pwd",),
        auth_time=now,
        evidence={"level": assurance.PASSWORD, "method": "password", "verified_at": now},
    )
