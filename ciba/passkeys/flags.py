"""What a verified assertion's flags say: the level reached and the RFC 8176 ``amr``.

* ``hwk`` when the backup-eligible flag is clear (a device-bound key: it cannot leave the
  authenticator), ``swk`` when set (a synced passkey: a software-protected key that may be
  copied to the user's other devices by its provider);
* ``user`` when the user-present flag is set (the user touched or confirmed);
* ``mfa`` when the user-verified flag is set: possession of the key plus the authenticator's
  own PIN, pattern or biometric.

Never ``pin``, ``fpt`` or ``face``: the flags say that the user was verified, not how, and an
``amr`` must not claim what was not observed.

The level is ``passkey_device_bound`` only when both the stored credential and this assertion
say the key is not backup-eligible; ``passkey`` otherwise.
"""

from __future__ import annotations

from .. import assurance

__all__ = ["amr", "level"]


def level(*, backup_eligible: bool) -> str:
    return assurance.PASSKEY if backup_eligible else assurance.PASSKEY_DEVICE_BOUND


def amr(*, backup_eligible: bool, user_present: bool, user_verified: bool) -> tuple[str, ...]:
    values = ["swk" if backup_eligible else "hwk"]
    if user_present:
        values.append("user")
    if user_verified:
        values.append("mfa")
    return tuple(values)
