"""Enrolling a passkey (WebAuthn registration) and removing one.

Registration asks for a discoverable credential (``residentKey: required``, so the passkey
can also sign in without a username) with user verification, and no attestation: ciba does
not restrict which authenticators users may choose, so there is no reason to collect
attestation statements (which identify the device model). The ``user.id`` offered is an
opaque random handle, the same for all of one user's passkeys, never the username, primary
key or e-mail address: authenticators may show or sync it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.utils import timezone
from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers.exceptions import InvalidRegistrationResponse, WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .. import assurance, signals
from ..conf import ciba_settings
from ..errors import InvalidAuthentication
from ..models import Passkey, WebAuthnChallenge
from . import challenges
from .ceremony import check_origin, check_rp_id_hash, check_user_flags
from .encoding import b64url, from_b64url
from .relying_party import relying_party
from .responses import parse_attestation

__all__ = ["descriptors", "enroll", "registration_options", "remove", "require_recent_sign_in"]

#: Bytes of a new user handle (WebAuthn allows up to 64).
USER_HANDLE_BYTES = 32


def descriptors(passkeys: Any) -> list[PublicKeyCredentialDescriptor]:
    """Credential descriptors (ID and transports) for ``passkeys``."""
    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=from_b64url(passkey.credential_id),
            transports=[AuthenticatorTransport(t) for t in passkey.transports or [] if t in known] or None,
        )
        for passkey in passkeys
    ]


def _limit_reached(user: Any) -> None:
    limit = ciba_settings.PASSKEYS_PER_USER
    if Passkey.objects.filter(user_id=user.pk).count() >= limit:
        raise InvalidAuthentication(
            f"You already have {limit} passkeys, the most allowed: remove one before adding another."
        )


def require_recent_sign_in(http_request: Any) -> None:
    """A browser session must have signed in within ``PASSKEY_ENROLLMENT_MAX_AUTH_AGE``
    seconds to enroll: otherwise whoever holds a stolen or forgotten session could add their
    own passkey and from then on approve at the passkey level. The sign-in time is the one
    ``ciba.assurance`` stamps into the session at login (never ``last_login``, which another
    session may have refreshed). Requests carrying an OAuth token (a native device app) are
    the app's to re-authenticate: it has no session here to judge.
    """
    max_age = ciba_settings.PASSKEY_ENROLLMENT_MAX_AUTH_AGE
    session = getattr(http_request, "session", None)
    if max_age is None or session is None or getattr(http_request, "auth", None) is not None:
        return
    stamp = session.get(assurance.SESSION_AUTH_TIME_KEY)
    if not isinstance(stamp, int) or timezone.now().timestamp() - stamp > max_age:
        raise InvalidAuthentication(
            f"Sign in again to add a passkey: adding one needs a sign-in less than "
            f"{max(1, round(max_age / 60))} minutes old."
        )


def registration_options(http_request: Any, user: Any) -> dict[str, Any]:
    """``{"publicKey": PublicKeyCredentialCreationOptionsJSON}`` to enroll a passkey for
    ``user``; stores the challenge (with the user handle offered)."""
    require_recent_sign_in(http_request)
    _limit_reached(user)
    rp = relying_party(http_request)
    mine = list(Passkey.objects.filter(user_id=user.pk))
    handle = from_b64url(mine[0].user_handle) if mine else secrets.token_bytes(USER_HANDLE_BYTES)
    name = user.get_username()
    display = (getattr(user, "get_full_name", lambda: "")() or "").strip() or name
    row = challenges.issue(
        WebAuthnChallenge.Purpose.REGISTER, rp_id=rp.id, user=user, transaction_digest=handle.hex()
    )
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=handle,
        user_name=name[:64],
        user_display_name=display[:64],
        challenge=from_b64url(row.challenge),
        timeout=ciba_settings.WEBAUTHN_CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=descriptors(mine),
    )
    return {"publicKey": json.loads(options_to_json(options))}


def enroll(http_request: Any, user: Any, credential: Any, *, name: str = "") -> Passkey:
    """Verify a ``RegistrationResponseJSON`` for ``user`` and store the passkey; fires
    ``passkey_enrolled``. ``InvalidAuthentication`` for every refusal."""
    if name is not None and not isinstance(name, str):
        raise InvalidAuthentication("The passkey name must be a string.")
    require_recent_sign_in(http_request)
    parsed = parse_attestation(credential)
    row = challenges.consume(parsed.client.challenge)
    if row.purpose != WebAuthnChallenge.Purpose.REGISTER:
        raise InvalidAuthentication("This passkey response was not made to enroll a passkey.")
    if row.user_id != getattr(user, "pk", None):
        raise InvalidAuthentication("This passkey response was made for another account.")
    if challenges.expired(row):
        raise InvalidAuthentication("This passkey enrollment expired: start again.")
    rp = relying_party(http_request)
    check_origin(parsed.client.data.origin, rp, parsed.client.data.cross_origin)
    auth_data = parsed.attestation.auth_data
    check_rp_id_hash(auth_data.rp_id_hash, row.rp_id)
    check_user_flags(user_present=bool(auth_data.flags.up), user_verified=bool(auth_data.flags.uv))
    if Passkey.objects.filter(credential_id=parsed.credential_id).exists():
        raise InvalidAuthentication("This passkey is already enrolled.")
    try:
        verified = verify_registration_response(
            credential=parsed.credential,
            expected_challenge=from_b64url(row.challenge),
            expected_rp_id=row.rp_id,
            expected_origin=parsed.client.data.origin,
            require_user_presence=True,
            require_user_verification=True,
        )
    except InvalidRegistrationResponse:
        raise InvalidAuthentication(
            "The passkey could not be verified: its attestation or public key is not supported."
        ) from None
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise InvalidAuthentication(
            "The passkey could not be verified: its public key cannot be read."
        ) from None
    if b64url(verified.credential_id) != parsed.credential_id:
        raise InvalidAuthentication("The passkey response is malformed: its ID is not the attested one.")
    try:
        with transaction.atomic(using=router.db_for_write(Passkey)):
            # Serialize one user's enrollments so two at once cannot pass the limit together.
            list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
            _limit_reached(user)
            passkey = Passkey.objects.create(
                user=user,
                name=(name or "").strip()[:64],
                credential_id=parsed.credential_id,
                public_key=verified.credential_public_key,
                user_handle=b64url(bytes.fromhex(row.transaction_digest)),
                sign_count=verified.sign_count,
                aaguid=verified.aaguid,
                transports=parsed.transports,
                backup_eligible=bool(auth_data.flags.be),
                backed_up=bool(auth_data.flags.bs),
            )
    except IntegrityError:
        raise InvalidAuthentication("This passkey is already enrolled.") from None
    signals.passkey_enrolled.send(sender=Passkey, passkey=passkey, user=user)
    return passkey


def remove(user: Any, passkey_id: Any) -> None:
    """Remove ``user``'s passkey ``passkey_id``; fires ``passkey_removed``. Someone else's or
    an unknown ID is ``InvalidAuthentication`` with status 404 (no hint that it exists)."""
    try:
        passkey = Passkey.objects.filter(pk=passkey_id, user_id=getattr(user, "pk", None)).first()
    except (ValidationError, ValueError, TypeError):  # not a UUID
        passkey = None
    if passkey is None:
        raise InvalidAuthentication("No such passkey.", status_code=404)
    removed_id = passkey.pk
    passkey.delete()
    passkey.pk = removed_id  # receivers (an audit log) want to know which one went
    signals.passkey_removed.send(sender=Passkey, passkey=passkey, user=user)
