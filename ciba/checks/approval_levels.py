"""Authentication at approval: the levels, their ``acr``, the floors, and passkeys (WebAuthn).

A mistake here would not fail loudly: a malformed ``APPROVAL_ACR`` or an unknown floor would
fail at the first approval, a floor no installed method can reach would leave every request
pending until it expires (the device can never satisfy ``step_up_required``), and discovery
promising an ``acr`` the shipped policy cannot produce makes relying parties ask for what they
never get. ``ciba.assurance`` is the single reader of these settings at request time; these
checks read the raw values first so that a wrong type is a finding, never a crash of
``manage.py check``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.core import checks

from .. import assurance
from ..conf import DEFAULTS, ciba_settings
from ..profile import PROFILE_FAPI_CIBA
from .codes import Codes
from .values import dotted_name

#: The policy whose acr values ``APPROVAL_ACR`` describes (a site's own policy says its own).
SHIPPED_POLICY = "ciba.backends.policy.AuthenticationLevelPolicy"

#: A DNS name as WebAuthn's RP ID must be: lowercase labels, no scheme, port or path.
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
RP_ID = re.compile(rf"(?=.{{1,253}}\Z){LABEL}(?:\.{LABEL})*")

#: Hosts a browser treats as a secure context over plain http (WebAuthn needs one).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@checks.register(checks.Tags.security)
def check_approval_levels(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``APPROVAL_ACR``, the floors, discovery's acr values and the passkey settings."""
    messages = _check_approval_acr()
    messages += _check_floors()
    messages += _check_webauthn_settings()
    if not any(m.id == Codes.APPROVAL_ACR for m in messages):
        messages += _check_advertised_acr_values()
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_webauthn_rp_id(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Without ``WEBAUTHN_RP_ID`` a passkey binds to the host that served the page it was
    created on: renaming that host (or serving the device page from a second one) strands every
    enrolled passkey, and users find out only when approving."""
    if not assurance.passkeys_available() or ciba_settings.raw("WEBAUTHN_RP_ID"):
        return []
    return [
        checks.Warning(
            "WEBAUTHN_RP_ID is not set: each passkey is bound to whatever host served the page it "
            "was enrolled on, and stops working if that host is renamed.",
            hint='Set CIBA["WEBAUTHN_RP_ID"] to your registrable domain (e.g. "example.com"), the same '
            "on every host that serves the device page or app.",
            id=Codes.WEBAUTHN_RP_ID_UNSET,
        )
    ]


def passkeys_usable() -> bool:
    """Whether a user can present a passkey here at all: the WebAuthn library imports, and
    there is a page (``ciba.device``) or a registered app origin (``WEBAUTHN_ORIGINS``) where
    the browser or app can run a ceremony."""
    return assurance.passkeys_available() and (
        apps.is_installed("ciba.device") or bool(ciba_settings.raw("WEBAUTHN_ORIGINS"))
    )


def _check_approval_acr() -> list[checks.CheckMessage]:
    mapping = ciba_settings.raw("APPROVAL_ACR")
    problems: list[str] = []
    if not isinstance(mapping, dict):
        problems.append(f"it is {type(mapping).__name__}, not a dict")
    else:
        unknown = sorted(str(key) for key in mapping if key not in assurance.LEVELS)
        if unknown:
            problems.append(f"unknown levels {', '.join(unknown)}")
        bad = sorted(
            str(key)
            for key, value in mapping.items()
            if not isinstance(value, str) or (value and (value != value.strip() or len(value.split()) != 1))
        )
        if bad:
            problems.append(f"the acr of {', '.join(bad)} is not a string without spaces")
    if not problems:
        return []
    return [
        checks.Error(
            f'CIBA["APPROVAL_ACR"] is malformed: {"; ".join(problems)}.',
            hint=f'Map levels ({", ".join(assurance.LEVELS)}) to acr values ("" claims none), '
            f"e.g. {DEFAULTS['APPROVAL_ACR']!r}.",
            id=Codes.APPROVAL_ACR,
        )
    ]


def _check_floors() -> list[checks.CheckMessage]:
    """Each floor must be a level, and one the installed methods can reach: otherwise every
    approval ends in a step-up the device cannot perform."""
    messages: list[checks.CheckMessage] = []
    floors = [("APPROVAL_MINIMUM_LEVEL", True)]
    floors.append(("FAPI_APPROVAL_MINIMUM_LEVEL", ciba_settings.raw("PROFILE") == PROFILE_FAPI_CIBA))
    for key, in_force in floors:
        level = ciba_settings.raw(key)
        allowed_empty = key == "FAPI_APPROVAL_MINIMUM_LEVEL"
        if level == "" and allowed_empty:
            continue
        if not isinstance(level, str) or level not in assurance.LEVELS:
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] is {level!r}, not a level of authentication.',
                    hint=f'Set CIBA["{key}"] to one of {", ".join(assurance.LEVELS)}'
                    + (' (or "" for no floor of its own).' if allowed_empty else "."),
                    id=Codes.APPROVAL_LEVEL,
                )
            )
            continue
        reason = _unreachable(level) if in_force else None
        if reason:
            messages.append(
                checks.Error(
                    f'CIBA["{key}"] requires "{level}" at every approval, but {reason}: every request '
                    "would wait for a step-up the device cannot perform.",
                    hint=_reach_hint(level, key),
                    id=Codes.APPROVAL_LEVEL,
                )
            )
    return messages


def _unreachable(level: str) -> str | None:
    """Why no installed method reaches ``level``; None when one does."""
    if assurance.rank(level) <= assurance.rank(assurance.SESSION):
        return None
    if level == assurance.PASSWORD:
        if ciba_settings.raw("PASSWORD_REAUTHENTICATION") or passkeys_usable():
            return None
        return "PASSWORD_REAUTHENTICATION is off and passkeys are unavailable"
    if not assurance.passkeys_available():
        return "the WebAuthn library (the webauthn package) is not installed"
    if not passkeys_usable():
        return "ciba.device is not installed and WEBAUTHN_ORIGINS names no app, so no page can use a passkey"
    return None


def _reach_hint(level: str, key: str) -> str:
    if level == assurance.PASSWORD:
        return (
            f'Set CIBA["PASSWORD_REAUTHENTICATION"] = True, make passkeys available, or lower CIBA["{key}"].'
        )
    return (
        'Install the webauthn package and add "ciba.device" to INSTALLED_APPS (or list your '
        f'app\'s origins in CIBA["WEBAUTHN_ORIGINS"]), or lower CIBA["{key}"].'
    )


def _check_advertised_acr_values() -> list[checks.CheckMessage]:
    """Discovery must not promise an acr the shipped policy cannot deliver."""
    explicit = ciba_settings.raw("ACR_VALUES_SUPPORTED")
    policy = ciba_settings.raw("APPROVAL_POLICY_CLASS")
    shipped = SHIPPED_POLICY in (policy, dotted_name(policy))
    if explicit is None and not shipped and assurance.acr_values_supported():
        name = policy if isinstance(policy, str) else dotted_name(policy)
        return [
            checks.Warning(
                f"APPROVAL_POLICY_CLASS is your own ({name}) but "
                'CIBA["ACR_VALUES_SUPPORTED"] is unset, so discovery advertises what the shipped '
                f"policy's levels achieve ({', '.join(assurance.acr_values_supported())}), which "
                "your policy may never claim.",
                hint='Set CIBA["ACR_VALUES_SUPPORTED"] to the acr values your policy achieves, '
                "weakest first ([] for none).",
                id=Codes.ACR_VALUES_OF_ANOTHER_POLICY,
            )
        ]
    if not isinstance(explicit, (list, tuple)) or not shipped:
        return []  # unset (derived), malformed (ciba.E016), or a site's own policy
    producible = {assurance.acr_for(level) for level in assurance.reachable_levels()} - {""}
    extra = [value for value in explicit if isinstance(value, str) and value not in producible]
    if not extra:
        return []
    return [
        checks.Warning(
            f'CIBA["ACR_VALUES_SUPPORTED"] lists {", ".join(extra)}, which AuthenticationLevelPolicy '
            "never produces with this APPROVAL_ACR: discovery would promise an acr no approval "
            "delivers, and requests for it would wait or be refused.",
            hint='Remove CIBA["ACR_VALUES_SUPPORTED"] (discovery then lists what APPROVAL_ACR maps the '
            'reachable levels to), or map a level to those values in CIBA["APPROVAL_ACR"].',
            id=Codes.ACR_VALUES_UNACHIEVABLE,
        )
    ]


def _check_webauthn_settings() -> list[checks.CheckMessage]:
    """Malformed passkey settings would fail every ceremony at request time, or, for an RP ID
    that does not cover the origins, make every browser refuse to create or use a passkey."""
    problems: list[str] = []
    for key in ("WEBAUTHN_CHALLENGE_SECONDS", "PASSKEYS_PER_USER"):
        value = ciba_settings.raw(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key} must be a positive whole number, not {value!r}")
    if not isinstance(ciba_settings.raw("PASSWORD_REAUTHENTICATION"), bool):
        problems.append("PASSWORD_REAUTHENTICATION must be True or False")
    if not isinstance(ciba_settings.raw("WEBAUTHN_RP_NAME"), str):
        problems.append("WEBAUTHN_RP_NAME must be a string")
    rp_id = ciba_settings.raw("WEBAUTHN_RP_ID")
    if not isinstance(rp_id, str) or (rp_id and not RP_ID.fullmatch(rp_id)):
        problems.append(f"WEBAUTHN_RP_ID {rp_id!r} is not a lowercase domain name (no scheme, port or path)")
        rp_id = ""
    origins = ciba_settings.raw("WEBAUTHN_ORIGINS")
    if not isinstance(origins, (list, tuple)):
        problems.append("WEBAUTHN_ORIGINS must be a list of origins")
    else:
        problems += [p for origin in origins if (p := _origin_problem(origin, rp_id))]
    if not problems:
        return []
    return [
        checks.Error(
            f"CIBA passkey settings are malformed: {'; '.join(problems)}.",
            hint='See docs/settings.md (passkeys): WEBAUTHN_RP_ID is a domain such as "example.com", '
            'WEBAUTHN_ORIGINS origins such as "https://login.example.com" on it (or an app origin '
            'such as "android:apk-key-hash:..."), the counts positive whole numbers.',
            id=Codes.WEBAUTHN_SETTINGS,
        )
    ]


def _origin_problem(origin: Any, rp_id: str) -> str | None:
    if not isinstance(origin, str) or not origin:
        return f"the origin {origin!r} is not a string"
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https"):
        # A native app's origin (android:apk-key-hash:..., ios:bundle-id:...): compared as is.
        return None if ":" in origin and " " not in origin else f"the origin {origin!r} has no scheme"
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return f"the origin {origin!r} has a malformed port"
    if not host or parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return f"the origin {origin!r} is not scheme://host[:port]"
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"the origin {origin!r} is plain http (passkeys need https, or http on localhost)"
    if rp_id and host != rp_id and not host.endswith("." + rp_id):
        return f"the origin {origin!r} is not on WEBAUTHN_RP_ID {rp_id!r} (browsers refuse its passkeys)"
    return None
