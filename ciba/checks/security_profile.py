"""The security profile (``CIBA["PROFILE"]``) against every other setting.

The profile never silently changes another setting: every contradiction between the profile and
a setting is an error here, at start-up (under FAPI-CIBA: the push mode, algorithms other than
PS256 and ES256, signed requests valid for more than 60 minutes), and what the profile only
expects is a warning (mTLS, binding messages). The narrowing in ``ciba.profile`` at request time
is only the safety net of a silenced check. The profile's rules for registered clients are
``ciba.registration_rules``'s, reported by ``registrations``.
"""

from __future__ import annotations

from django.core import checks

from .. import constants
from ..conf import ciba_settings
from .codes import Codes
from .values import as_list, is_number

FAPI_ALGS_HINT = '["PS256", "ES256"]'


def profile_messages() -> list[checks.CheckMessage]:
    """Every contradiction between ``PROFILE`` and another setting (the profile changes none)."""
    name = ciba_settings.raw("PROFILE")
    if name not in constants.PROFILES:
        return [
            checks.Error(
                f"CIBA profile {name!r} is unknown, so no profile is in force: the server runs plain CIBA.",
                hint='Set CIBA["PROFILE"] to "fapi-ciba" (FAPI-CIBA) or "" (plain CIBA).',
                id=Codes.UNKNOWN_PROFILE,
            )
        ]
    if name != constants.PROFILE_FAPI_CIBA:
        return []
    messages: list[checks.CheckMessage] = []
    modes = as_list(ciba_settings.raw("DELIVERY_MODES"))
    if constants.MODE_PUSH in modes:
        messages.append(
            checks.Error(
                'The FAPI-CIBA profile does not allow the push mode (FAPI-CIBA §5.2.2 "shall not support '
                'push"), but CIBA["DELIVERY_MODES"] offers it: discovery and push clients would be refused '
                "at request time.",
                hint='Remove "push" from CIBA["DELIVERY_MODES"], e.g. ["poll", "ping"].',
                id=Codes.FAPI_PUSH,
            )
        )
    for key in ("REQUEST_SIGNING_ALGS", "DPOP_SIGNING_ALGS"):
        others = [a for a in as_list(ciba_settings.raw(key)) if a not in constants.FAPI_ALGS]
        if others:
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] allows {others!r}, but FAPI-CIBA allows only PS256 and ES256 '
                    "(FAPI 1 Advanced §8.6): those algorithms would be refused at request time.",
                    hint=f'Set CIBA["{key}"] = {FAPI_ALGS_HINT}.',
                    id=Codes.FAPI_ALGS,
                )
            )
    lifetime = ciba_settings.raw("REQUEST_OBJECT_MAX_LIFETIME")
    if is_number(lifetime) and lifetime > constants.FAPI_REQUEST_OBJECT_MAX_LIFETIME:
        messages.append(
            checks.Error(
                f'CIBA["REQUEST_OBJECT_MAX_LIFETIME"] is {lifetime} s, but FAPI-CIBA §5.2.2 limits a '
                "signed request's nbf-to-exp span to 60 minutes: longer ones would be refused.",
                hint='Set CIBA["REQUEST_OBJECT_MAX_LIFETIME"] to '
                f"{constants.FAPI_REQUEST_OBJECT_MAX_LIFETIME} or less.",
                id=Codes.FAPI_REQUEST_OBJECT_LIFETIME,
            )
        )
    if not ciba_settings.raw("MTLS_CERT_HEADER"):
        messages.append(
            checks.Warning(
                "FAPI-CIBA clients usually bind tokens with mTLS; only DPoP can bind them now, because no "
                "client certificate is forwarded (and the mTLS client authentication methods are off).",
                hint='Terminate TLS with client certificates and set CIBA["MTLS_CERT_HEADER"] and '
                'CIBA["TRUSTED_PROXIES"] (docs/nginx-mtls.md), or silence ciba.W008 if your clients '
                "use DPoP.",
                id=Codes.FAPI_WITHOUT_MTLS,
            )
        )
    if not ciba_settings.raw("BINDING_MESSAGE_REQUIRED"):
        messages.append(
            checks.Warning(
                "FAPI-CIBA §5.2.2-2 requires either an authorization context unique to each request or a "
                "binding_message, and binding messages are optional here: the site must then guarantee "
                "the former (for example, the device shows each request's own amount and payee).",
                hint='Set CIBA["BINDING_MESSAGE_REQUIRED"] = True, or silence ciba.W009 if every request '
                "carries a unique authorization context.",
                id=Codes.FAPI_BINDING_MESSAGE,
            )
        )
    return messages
