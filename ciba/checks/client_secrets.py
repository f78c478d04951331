"""Client-secret hashing and what checking a secret costs.

The keyed client-secret hash (``ciba.client_auth.hashers``) must be listed in PASSWORD_HASHERS,
or saving a client fails, but never first, or user passwords get a fast hash; its keys, the cap
on expensive checks in flight and the low-entropy switch must be valid values. At deploy, a site
still storing client secrets with the password hasher, or accepting low-entropy secrets, is
warned: every check of such a secret costs a password hash, which a flood of requests turns into
a denial of service.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string
from oauth2_provider.settings import oauth2_settings

from ..client_auth import hashers as client_secret_hashers
from ..conf import ciba_settings
from .codes import Codes

KEYED_HASHER_SETTING = (
    f'OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "{client_secret_hashers.ALGORITHM}" and '
    f'"{client_secret_hashers.DOTTED_PATH}" in PASSWORD_HASHERS, after the default'
)


def _password_hashers() -> list[Any]:
    """The classes PASSWORD_HASHERS names (a path that does not import is Django's to report)."""
    found = []
    for path in getattr(settings, "PASSWORD_HASHERS", []):
        try:
            found.append(import_string(path))
        except ImportError:
            found.append(None)
    return found


def _is_keyed_hasher(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, client_secret_hashers.ClientSecretHasher)


@checks.register(checks.Tags.security)
def check_client_secret_hashing(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The keyed client-secret hash: named by DOT but not listed (every new client's save would
    fail), listed first (user passwords would get a fast hash), and the settings it reads."""
    messages: list[checks.CheckMessage] = []
    hashers = _password_hashers()
    if oauth2_settings.CLIENT_SECRET_HASHER == client_secret_hashers.ALGORITHM and not any(
        _is_keyed_hasher(cls) for cls in hashers
    ):
        messages.append(
            checks.Error(
                f'OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] is "{client_secret_hashers.ALGORITHM}", but '
                "PASSWORD_HASHERS does not list its hasher: saving a client would fail.",
                hint=f'Add "{client_secret_hashers.DOTTED_PATH}" to PASSWORD_HASHERS, after the default.',
                id=Codes.CLIENT_SECRET_HASHER_MISSING,
            )
        )
    if hashers and _is_keyed_hasher(hashers[0]):
        messages.append(
            checks.Error(
                "The keyed client-secret hasher is first in PASSWORD_HASHERS: Django would hash user "
                "passwords with it, and a keyed hash does not slow down guessing a password.",
                hint="Keep a slow hasher (PBKDF2, Argon2, scrypt) first; list "
                f'"{client_secret_hashers.DOTTED_PATH}" after it.',
                id=Codes.CLIENT_SECRET_HASHER_FIRST,
            )
        )
    keys = ciba_settings.raw("CLIENT_SECRET_HASH_KEYS")
    cap = ciba_settings.raw("CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT")
    bad = []
    if keys is not None and (
        not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) and k for k in keys)
    ):
        bad.append("CLIENT_SECRET_HASH_KEYS (None, or a list of non-empty strings, current first)")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        bad.append("CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT (None, or a whole number of at least 1)")
    if not isinstance(ciba_settings.raw("ALLOW_LOW_ENTROPY_CLIENT_SECRETS"), bool):
        bad.append("ALLOW_LOW_ENTROPY_CLIENT_SECRETS (True or False)")
    if bad:
        messages.append(
            checks.Error(
                f"CIBA client authentication settings are not valid: {'; '.join(bad)}.",
                hint="docs/settings.md, section Client authentication and rate limits.",
                id=Codes.CLIENT_AUTH_SETTINGS,
            )
        )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_client_secret_hashing_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if oauth2_settings.CLIENT_SECRET_HASHER != client_secret_hashers.ALGORITHM:
        messages.append(
            checks.Warning(
                "Client secrets are stored with the password hasher: every check of an unknown id, a "
                "wrong or an uncached secret costs a password hash (~300 ms of CPU), which a flood of "
                "requests turns into a denial of service.",
                hint=f"Set {KEYED_HASHER_SETTING} (docs/security.md); existing secrets are re-hashed "
                "on their first successful use.",
                id=Codes.CLIENT_SECRET_HASHER_UNUSED,
            )
        )
    if ciba_settings.raw("ALLOW_LOW_ENTROPY_CLIENT_SECRETS") is True:
        messages.append(
            checks.Warning(
                "Site-chosen client secrets under 256 bits are accepted: they keep the slow password "
                "hash, so each check of one costs ~300 ms of CPU, and they can be guessed.",
                hint='Set CIBA["ALLOW_LOW_ENTROPY_CLIENT_SECRETS"] = False and give such clients '
                "generated secrets (manage.py ciba_client --client-id ID).",
                id=Codes.LOW_ENTROPY_SECRETS_ALLOWED,
            )
        )
    return messages
