"""Storing client secrets with a keyed hash: a check costs microseconds, not a password hash.

A password hash (PBKDF2, ~300 ms of CPU) protects what people choose: short, guessable
passwords. A client secret the server generated with 256 bits of entropy needs no work
factor: nobody can guess it online or offline, so the hash only has to make a stolen database
useless on its own. ``ClientSecretHasher`` stores ``HMAC-SHA-256(server key, salt + secret)``:
without the server key the stored value says nothing, and verifying costs one HMAC, so a flood
of wrong secrets or unknown client ids has nothing to amplify.

Sites turn it on with DOT's ``OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "ciba_hmac_sha256"``
and by listing ``ciba.client_auth.hashers.ClientSecretHasher`` in ``PASSWORD_HASHERS``, never
first (user passwords keep the slow default; ``ciba.E036`` checks). Keys come from
``CIBA["CLIENT_SECRET_HASH_KEYS"]`` (default: ``SECRET_KEY``, then ``SECRET_KEY_FALLBACKS``, as
Django rotates its own keys). The first key hashes; every key verifies; each stored value names
its key by an id that reveals nothing of the key, and a value under an older key is re-hashed
under the current one on its first successful use (``ciba.client_auth.secret.upgrade_secret``).

A secret whose estimated entropy is below ``MIN_SECRET_BITS`` (a site-chosen one, allowed only
with ``CIBA["ALLOW_LOW_ENTROPY_CLIENT_SECRETS"]``) is hashed with the site's slow password hasher
instead: a keyed hash of a guessable secret would make guessing cheap for whoever holds the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import BasePasswordHasher, PBKDF2PasswordHasher, get_hashers, mask_hash
from django.utils.crypto import constant_time_compare
from oauth2_provider.settings import oauth2_settings

from ..conf import ciba_settings
from ..registration_rules import MIN_SECRET_BITS, estimated_secret_bits, strong_client_secret

__all__ = ["ALGORITHM", "MIN_SECRET_BITS", "ClientSecretHasher", "enough_entropy", "estimated_secret_bits"]

ALGORITHM = "ciba_hmac_sha256"
DOTTED_PATH = "ciba.client_auth.hashers.ClientSecretHasher"


class ClientSecretHasher(BasePasswordHasher):
    """``ciba_hmac_sha256$<key id>$<salt>$<base64 HMAC-SHA-256>`` of a high-entropy client secret."""

    algorithm = ALGORITHM

    def encode(self, password: str, salt: str) -> str:
        if not enough_entropy(password):
            # A guessable secret keeps the slow hash (and is upgraded never): see the module.
            return slow_hasher().encode(password, slow_hasher().salt())
        self._check_encode_args(password, salt)
        key_id, key = current_key()
        return f"{ALGORITHM}${key_id}${salt}${_digest(key, salt, password)}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, key_id, salt, digest = encoded.split("$", 3)
        assert algorithm == self.algorithm
        return {"algorithm": algorithm, "key_id": key_id, "salt": salt, "hash": digest}

    def verify(self, password: str, encoded: str) -> bool:
        try:
            decoded = self.decode(encoded)
        except (ValueError, AssertionError):
            return False
        keys = dict(all_keys())
        key = keys.get(decoded["key_id"])
        # An unknown key id (a key retired too early) still costs one HMAC: same timing.
        expected = _digest(key if key is not None else current_key()[1], decoded["salt"], password)
        return key is not None and constant_time_compare(expected, decoded["hash"])

    def must_update(self, encoded: str) -> bool:
        try:
            return self.decode(encoded)["key_id"] != current_key()[0]
        except (ValueError, AssertionError):
            return True

    def safe_summary(self, encoded: str) -> dict[str, str]:
        decoded = self.decode(encoded)
        return {
            "algorithm": decoded["algorithm"],
            "key id": decoded["key_id"],
            "salt": mask_hash(decoded["salt"], show=2),
            "hash": mask_hash(decoded["hash"]),
        }

    def harden_runtime(self, password: str, encoded: str) -> None:
        """Nothing to harden: every check costs the same single HMAC."""


def _digest(key: bytes, salt: str, secret: str) -> str:
    mac = hmac.new(key, f"{salt}\0{secret}".encode("utf-8", "surrogatepass"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii").rstrip("=")


def configured_keys() -> list[str]:
    """The server keys, current first: ``CLIENT_SECRET_HASH_KEYS``, or Django's own keys."""
    keys = ciba_settings.CLIENT_SECRET_HASH_KEYS
    if keys is None:
        keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [key for key in keys if isinstance(key, str) and key]


@lru_cache(maxsize=8)
def _derive(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    """(key id, HMAC key) of each configured key: derived, so the stored value is never keyed
    with ``SECRET_KEY`` itself, and named by an id that reveals nothing of it."""
    derived = []
    for key in keys:
        raw = key.encode("utf-8", "surrogatepass")
        key_id = hashlib.sha256(b"ciba.client-secret-key-id\0" + raw).hexdigest()[:8]
        derived.append((key_id, hashlib.sha256(b"ciba.client-secret-hash\0" + raw).digest()))
    return tuple(derived)


def all_keys() -> tuple[tuple[str, bytes], ...]:
    keys = _derive(tuple(configured_keys()))
    if not keys:
        raise ValueError('No key for client secrets: set SECRET_KEY or CIBA["CLIENT_SECRET_HASH_KEYS"].')
    return keys


def current_key() -> tuple[str, bytes]:
    return all_keys()[0]


def slow_hasher() -> BasePasswordHasher:
    """The site's password hasher for secrets too weak for the keyed hash: the first one of
    ``PASSWORD_HASHERS`` that is not this one (PBKDF2 if none is)."""
    for hasher in get_hashers():
        if not isinstance(hasher, ClientSecretHasher):
            return hasher
    return PBKDF2PasswordHasher()


def is_keyed(stored: str) -> bool:
    return isinstance(stored, str) and stored.startswith(ALGORITHM + "$")


def keyed_hashing_on() -> bool:
    """New client secrets are stored with ``ClientSecretHasher`` (DOT's setting names it and
    ``PASSWORD_HASHERS`` lists it)."""
    return oauth2_settings.CLIENT_SECRET_HASHER == ALGORITHM and any(
        isinstance(hasher, ClientSecretHasher) for hasher in get_hashers()
    )


def enough_entropy(secret: str) -> bool:
    """Whether ``secret`` is strong enough for the keyed hash (``MIN_SECRET_BITS``): DOT's and
    ``ciba_client``'s generated secrets are (762 and 256 bits)."""
    return strong_client_secret(secret)
