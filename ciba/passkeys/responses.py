"""Reading what a browser sent (``credential.toJSON()``) without trusting its shape.

Every refusal is an ``InvalidAuthentication`` with a sentence for the user; whatever the JSON
holds (missing members, wrong types, huge strings, bad base64, broken CBOR), nothing else
escapes. Sizes are capped before anything is decoded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from webauthn.helpers import (
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationObject,
    AuthenticationCredential,
    AuthenticatorData,
    CollectedClientData,
    RegistrationCredential,
)

from ..errors import InvalidAuthentication
from .encoding import b64url, from_b64url, is_b64url

__all__ = ["ParsedAssertion", "ParsedAttestation", "parse_assertion", "parse_attestation"]

#: Longest base64url text accepted per member (credential IDs are at most 1023 bytes).
LIMITS = {
    "id": 1400,
    "rawId": 1400,
    "clientDataJSON": 16_384,
    "authenticatorData": 16_384,
    "attestationObject": 65_536,
    "signature": 2_048,
    "userHandle": 128,
}

#: Exceptions py_webauthn's parsers (and the stdlib under them) raise on bad input.
PARSE_ERRORS = (
    WebAuthnException,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OverflowError,
    RecursionError,
)


def malformed(why: str) -> InvalidAuthentication:
    return InvalidAuthentication(f"The passkey response is malformed: {why}.")


@dataclass(frozen=True)
class _ClientData:
    data: CollectedClientData
    text: str  # clientDataJSON as sent (the bytes the signature covers, as UTF-8)
    challenge: str  # base64url


@dataclass(frozen=True)
class ParsedAssertion:
    """An ``AuthenticationResponseJSON``, decoded and shape-checked (not yet verified)."""

    credential: AuthenticationCredential
    credential_id: str
    client: _ClientData
    authenticator_data: AuthenticatorData
    authenticator_data_b64: str
    signature_b64: str
    user_handle: str | None  # base64url, when the authenticator returned one


@dataclass(frozen=True)
class ParsedAttestation:
    """A ``RegistrationResponseJSON``, decoded and shape-checked (not yet verified)."""

    credential: RegistrationCredential
    credential_id: str
    client: _ClientData
    attestation: AttestationObject
    transports: list[str]


def _members(credential: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if isinstance(credential, str):
        if len(credential) > 200_000:
            raise malformed("it is too large")
        try:
            credential = json.loads(credential)
        except ValueError:
            raise malformed("it is not JSON") from None
    if not isinstance(credential, dict):
        raise malformed("expected a JSON object")
    response = credential.get("response")
    if not isinstance(response, dict):
        raise malformed("response is missing")
    if credential.get("type") != "public-key":
        raise malformed("type must be public-key")
    for name in ("id", "rawId"):
        _check_b64(name, credential.get(name), required=True)
    if credential["id"] != credential["rawId"]:
        raise malformed("id and rawId differ")
    for name in required:
        _check_b64(name, response.get(name), required=True)
    for name in optional:
        _check_b64(name, response.get(name), required=False)
    return credential


def _check_b64(name: str, value: Any, *, required: bool) -> None:
    if not required and (value is None or value == ""):
        return
    if not isinstance(value, str) or not value:
        raise malformed(f"{name} is missing or not a string")
    if len(value) > LIMITS[name]:
        raise malformed(f"{name} is too long")
    if not is_b64url(value):
        raise malformed(f"{name} is not base64url")


def _client_data(encoded: str, expected_type: str) -> _ClientData:
    raw = from_b64url(encoded)
    try:
        text = raw.decode("utf-8")
        data = parse_client_data_json(raw)
    except PARSE_ERRORS:
        raise malformed("clientDataJSON is not a JSON object with type, challenge and origin") from None
    if data.type != expected_type:
        raise malformed(f"clientDataJSON is not of type {expected_type}")
    if not isinstance(data.origin, str):
        raise malformed("clientDataJSON has no origin")
    challenge = b64url(data.challenge)
    if json.loads(text).get("challenge") != challenge:  # py_webauthn decodes leniently
        raise malformed("the challenge in clientDataJSON is not base64url")
    return _ClientData(data=data, text=text, challenge=challenge)


def parse_assertion(credential: Any) -> ParsedAssertion:
    """Decode an ``AuthenticationResponseJSON`` (a dict, or its JSON text)."""
    credential = _members(credential, ("clientDataJSON", "authenticatorData", "signature"), ("userHandle",))
    response = credential["response"]
    try:
        parsed = parse_authentication_credential_json(
            {**credential, "authenticatorAttachment": None, "response": dict(response)}
        )
    except PARSE_ERRORS:
        raise malformed("it is not an AuthenticationResponseJSON") from None
    client = _client_data(response["clientDataJSON"], "webauthn.get")
    try:
        authenticator_data = parse_authenticator_data(from_b64url(response["authenticatorData"]))
    except PARSE_ERRORS:
        raise malformed("authenticatorData cannot be read") from None
    if authenticator_data.flags.bs and not authenticator_data.flags.be:
        raise malformed("authenticatorData says backed up but not backup eligible")
    return ParsedAssertion(
        credential=parsed,
        credential_id=credential["id"],
        client=client,
        authenticator_data=authenticator_data,
        authenticator_data_b64=response["authenticatorData"],
        signature_b64=response["signature"],
        user_handle=response.get("userHandle") or None,
    )


def parse_attestation(credential: Any) -> ParsedAttestation:
    """Decode a ``RegistrationResponseJSON`` (a dict, or its JSON text)."""
    credential = _members(credential, ("clientDataJSON", "attestationObject"))
    response = credential["response"]
    transports = response.get("transports")
    try:
        parsed = parse_registration_credential_json(
            {
                **credential,
                "authenticatorAttachment": None,
                "response": {
                    "clientDataJSON": response["clientDataJSON"],
                    "attestationObject": response["attestationObject"],
                    "transports": transports if isinstance(transports, list) else None,
                },
            }
        )
        attestation = parse_attestation_object(from_b64url(response["attestationObject"]))
    except PARSE_ERRORS:
        raise malformed("attestationObject cannot be read") from None
    client = _client_data(response["clientDataJSON"], "webauthn.create")
    known = [transport.value for transport in parsed.response.transports or []]
    return ParsedAttestation(
        credential=parsed,
        credential_id=credential["id"],
        client=client,
        attestation=attestation,
        transports=list(dict.fromkeys(known))[:8],
    )
