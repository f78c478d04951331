"""A software WebAuthn authenticator and browser, for tests that cannot run Chromium.

The server side of passkeys (``ciba.passkeys``) must be tested against what a browser really
sends, including what a broken or hostile one sends. This module plays both the browser (it
builds ``clientDataJSON`` with the origin and the challenge) and the authenticator (an EC P-256
key per credential, ES256 signatures, ``"none"`` attestation, authenticator data with its flags
and sign count). It takes the options dicts the server returns -- ``{"publicKey": {...}}`` or
the inner ``PublicKeyCredentialCreationOptionsJSON`` / ``PublicKeyCredentialRequestOptionsJSON``
-- and returns what ``credential.toJSON()`` gives in a browser (WebAuthn Level 3
``RegistrationResponseJSON`` / ``AuthenticationResponseJSON``), ready to post.

Usage::

    authenticator = SoftAuthenticator()                        # origin http://testserver
    created = authenticator.create(options)                    # options from registration_options
    passkeys.enroll(request, user, created)
    assertion = authenticator.get(approval_options)            # options from approval_options
    passkeys.verify_approval(request, ar, user, assertion)

Knobs. Defaults (``SoftAuthenticator(...)``), overridable per call of ``create``/``get``:

* ``origin``: the origin the "browser" writes into ``clientDataJSON`` (default
  ``http://testserver``, Django's test host);
* ``rp_id``: the RP ID whose SHA-256 starts the authenticator data (default: the options'
  ``rp.id`` / ``rpId``, else the origin's host);
* ``user_present`` / ``user_verified``: the UP and UV flags (default both set);
* ``backup_eligible`` / ``backed_up``: the BE and BS flags (default clear: a device-bound key,
  like a security key; set both for a synced passkey). Stored per credential at ``create``;
  ``get`` uses the credential's unless given;
* ``transports``: what the response reports (default ``["internal"]``);
* ``attachment``: ``authenticatorAttachment`` (default ``"platform"``).

Per call only:

* ``create(..., credential_id=...)``: register an existing credential again (same key and ID)
  instead of making a new one, ignoring ``excludeCredentials`` -- how a test shows the server
  refuses a duplicate. Otherwise a credential listed in ``excludeCredentials`` raises
  ``AuthenticatorError("InvalidStateError")`` as a browser does;
* ``create(..., user_id=...)``: the ``user.id`` to store instead of the options';
  ``create(..., sign_count=N)``: the new credential's first count (default 0);
* ``get(..., credential_id=...)``: which credential answers (default: the first one in
  ``allowCredentials`` this authenticator holds, or for a discoverable request the newest
  credential for the RP ID). Naming one not in ``allowCredentials`` is allowed (a test of
  a passkey the server did not offer). Nothing usable raises ``AuthenticatorError
  ("NotAllowedError")``;
* ``get(..., sign_count=N)``: the signature counter to report, and remember (may go
  backwards). Without it the credential's counter goes up by ``credential.increment`` (1
  by default; set 0 for a synced passkey that always reports 0);
* ``get(..., user_handle=...)``: the ``userHandle`` to report (bytes, base64url str, or
  ``None`` to omit it); default the credential's;
* ``challenge=``: override the challenge written into ``clientDataJSON`` (bytes or base64url);
* ``client_data_type=``: override ``"webauthn.create"`` / ``"webauthn.get"``;
* ``corrupt_signature=True``: flip a bit of the signature (``get``) so it no longer verifies.

``authenticator.credentials`` maps each credential ID (base64url) to a ``SoftCredential``
(``private_key``, ``rp_id``, ``user_handle``, ``sign_count``, ``increment``, flags), so a
test can reach in, e.g. to copy a credential into a second authenticator (a clone).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["AuthenticatorError", "SoftAuthenticator", "SoftCredential", "b64url", "from_b64url"]

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40

ES256 = -7
_UNSET: Any = object()


class AuthenticatorError(Exception):
    """What ``navigator.credentials`` would reject with (the DOMException name in ``args[0]``)."""


def b64url(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn's JSON forms carry bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else from_b64url(value)


@dataclass
class SoftCredential:
    """One discoverable credential held by the authenticator."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    user_name: str = ""
    sign_count: int = 0
    increment: int = 1
    backup_eligible: bool = False
    backed_up: bool = False
    transports: list[str] = field(default_factory=lambda: ["internal"])

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def spki(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def clone(self) -> SoftCredential:
        """A copy sharing the key and the counter value (a cloned authenticator)."""
        twin = copy.copy(self)
        twin.transports = list(self.transports)
        return twin


class SoftAuthenticator:
    """A browser plus a platform authenticator holding ES256 passkeys (see the module doc)."""

    def __init__(
        self,
        *,
        origin: str = "http://testserver",
        rp_id: str | None = None,
        user_present: bool = True,
        user_verified: bool = True,
        backup_eligible: bool = False,
        backed_up: bool = False,
        transports: list[str] | None = None,
        attachment: str = "platform",
        aaguid: bytes = bytes(16),
    ) -> None:
        self.origin = origin
        self.rp_id = rp_id
        self.user_present = user_present
        self.user_verified = user_verified
        self.backup_eligible = backup_eligible
        self.backed_up = backed_up
        self.transports = list(transports) if transports is not None else ["internal"]
        self.attachment = attachment
        self.aaguid = aaguid
        self.credentials: dict[str, SoftCredential] = {}

    # -- navigator.credentials.create() -----------------------------------------------------

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_present: bool | None = None,
        user_verified: bool | None = None,
        backup_eligible: bool | None = None,
        backed_up: bool | None = None,
        transports: list[str] | None = None,
        challenge: bytes | str | None = None,
        client_data_type: str = "webauthn.create",
        credential_id: str | None = None,
        user_id: bytes | str | None = None,
        sign_count: int = 0,
    ) -> dict[str, Any]:
        """A ``RegistrationResponseJSON`` for ``options`` (creation options)."""
        public_key = options.get("publicKey", options)
        origin = origin or self.origin
        rp_id = rp_id or self.rp_id or public_key.get("rp", {}).get("id") or _host(origin)
        if credential_id is not None:
            credential = self.credentials[credential_id]
        else:
            held = set(self.credentials)
            if any(entry.get("id") in held for entry in public_key.get("excludeCredentials") or []):
                raise AuthenticatorError("InvalidStateError")
            user = public_key.get("user", {})
            credential = SoftCredential(
                credential_id=os.urandom(32),
                private_key=ec.generate_private_key(ec.SECP256R1()),
                rp_id=rp_id,
                user_handle=_bytes(user_id) if user_id is not None else from_b64url(user.get("id", "")),
                user_name=user.get("name", ""),
                sign_count=sign_count,
                backup_eligible=self.backup_eligible if backup_eligible is None else backup_eligible,
                backed_up=self.backed_up if backed_up is None else backed_up,
                transports=list(transports) if transports is not None else list(self.transports),
            )
            self.credentials[credential.id] = credential
        flags = self._flags(credential, user_present, user_verified, backup_eligible, backed_up) | FLAG_AT
        attested = (
            self.aaguid
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        auth_data = _rp_hash(rp_id) + bytes([flags]) + struct.pack(">I", credential.sign_count) + attested
        client_data = self._client_data(client_data_type, challenge or public_key["challenge"], origin)
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {"credProps": {"rk": True}},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "authenticatorData": b64url(auth_data),
                "transports": list(credential.transports),
                "publicKey": b64url(credential.spki()),
                "publicKeyAlgorithm": ES256,
            },
        }

    # -- navigator.credentials.get() --------------------------------------------------------

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_present: bool | None = None,
        user_verified: bool | None = None,
        backup_eligible: bool | None = None,
        backed_up: bool | None = None,
        challenge: bytes | str | None = None,
        client_data_type: str = "webauthn.get",
        credential_id: str | None = None,
        sign_count: int | None = None,
        user_handle: Any = _UNSET,
        corrupt_signature: bool = False,
    ) -> dict[str, Any]:
        """An ``AuthenticationResponseJSON`` for ``options`` (request options)."""
        public_key = options.get("publicKey", options)
        origin = origin or self.origin
        credential = self._pick(public_key, credential_id, origin)
        rp_id = rp_id or self.rp_id or public_key.get("rpId") or credential.rp_id
        if sign_count is None:
            credential.sign_count += credential.increment
        else:
            credential.sign_count = sign_count
        flags = self._flags(credential, user_present, user_verified, backup_eligible, backed_up)
        auth_data = _rp_hash(rp_id) + bytes([flags]) + struct.pack(">I", credential.sign_count)
        client_data = self._client_data(client_data_type, challenge or public_key["challenge"], origin)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        if corrupt_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        handle = credential.user_handle if user_handle is _UNSET else user_handle
        if handle is not None:
            response["userHandle"] = b64url(_bytes(handle))
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
            "response": response,
        }

    # -- helpers -----------------------------------------------------------------------------

    def _pick(self, public_key: dict[str, Any], credential_id: str | None, origin: str) -> SoftCredential:
        if credential_id is not None:
            if credential_id not in self.credentials:
                raise AuthenticatorError("NotAllowedError")
            return self.credentials[credential_id]
        allowed = [entry.get("id") for entry in public_key.get("allowCredentials") or []]
        if allowed:
            for candidate in allowed:
                if candidate in self.credentials:
                    return self.credentials[candidate]
            raise AuthenticatorError("NotAllowedError")
        rp_id = public_key.get("rpId") or self.rp_id or _host(origin)
        mine = [credential for credential in self.credentials.values() if credential.rp_id == rp_id]
        if not mine:
            raise AuthenticatorError("NotAllowedError")
        return mine[-1]

    def _flags(
        self,
        credential: SoftCredential,
        user_present: bool | None,
        user_verified: bool | None,
        backup_eligible: bool | None,
        backed_up: bool | None,
    ) -> int:
        flags = 0
        if self.user_present if user_present is None else user_present:
            flags |= FLAG_UP
        if self.user_verified if user_verified is None else user_verified:
            flags |= FLAG_UV
        if credential.backup_eligible if backup_eligible is None else backup_eligible:
            flags |= FLAG_BE
        if credential.backed_up if backed_up is None else backed_up:
            flags |= FLAG_BS
        return flags

    @staticmethod
    def _client_data(kind: str, challenge: bytes | str, origin: str) -> bytes:
        text = challenge if isinstance(challenge, str) else b64url(challenge)
        return json.dumps(
            {"type": kind, "challenge": text, "origin": origin, "crossOrigin": False}, separators=(",", ":")
        ).encode()


def _rp_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode("utf-8")).digest()


def _host(origin: str) -> str:
    return urlsplit(origin).hostname or ""
