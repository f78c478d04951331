"""How strongly an approval authenticated the user, and what that lets the ID token claim.

One home for the levels of authentication an approval can achieve on the authentication
device, the ``acr`` each achieves (``CIBA["APPROVAL_ACR"]``), what a given request requires
(the site's floor, the FAPI-CIBA profile's, the client's, and the ``acr_values`` it asked for),
and which ``acr`` values this server can really produce (discovery's ``acr_values_supported``,
the essential-acr rule of the backchannel endpoint). The approval policy, the consent API,
discovery, the backchannel rules and the system checks all read it here, so "what does a
passkey achieve" is answered once.

Levels, weakest first:

* ``session``: a tap in a session that was signed in earlier (nothing proven at approval);
* ``password``: the password re-entered at approval (``PASSWORD_REAUTHENTICATION``);
* ``passkey``: a WebAuthn assertion with user verification over this very transaction;
* ``passkey_device_bound``: the same from a passkey its authenticator says cannot leave it
  (backup-eligible flag clear).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from .conf import ciba_settings
from .profile import fapi

SESSION = "session"
PASSWORD = "password"
PASSKEY = "passkey"
PASSKEY_DEVICE_BOUND = "passkey_device_bound"

#: Every level, weakest first.
LEVELS: tuple[str, ...] = (SESSION, PASSWORD, PASSKEY, PASSKEY_DEVICE_BOUND)

#: What the device does to reach each level: the ``method`` of the consent API's
#: ``authentication`` object (absent for ``session``).
METHOD_OF_LEVEL: dict[str, str] = {
    SESSION: "session",
    PASSWORD: "password",
    PASSKEY: "passkey",
    PASSKEY_DEVICE_BOUND: "passkey",
}

#: The session key where ``ciba.apps`` stamps when this browser session signed in (epoch
#: seconds): the true ``auth_time`` of a plain tap.
SESSION_AUTH_TIME_KEY = "ciba_auth_time"


@dataclass(frozen=True)
class Authentication:
    """What the user did at approval, as verified by ciba: the level reached, the RFC 8176
    ``amr`` values it proves, when it happened (``auth_time``), and the evidence to store with
    the decision (the fields of ``ApprovalEvidence``; empty for a plain tap)."""

    level: str
    amr: tuple[str, ...] = ()
    auth_time: datetime | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def rank(level: str) -> int:
    """Position of ``level`` among ``LEVELS`` (unknown levels rank below every known one)."""
    return LEVELS.index(level) if level in LEVELS else -1


def stronger(a: str, b: str) -> str:
    """The stronger of two levels."""
    return a if rank(a) >= rank(b) else b


def passkeys_available() -> bool:
    """Whether this installation can verify passkeys at all (the WebAuthn library imports)."""
    return importlib.util.find_spec("webauthn") is not None


def reachable_levels() -> list[str]:
    """The levels an approval on this installation can reach, weakest first."""
    levels = [SESSION]
    if ciba_settings.PASSWORD_REAUTHENTICATION:
        levels.append(PASSWORD)
    if passkeys_available():
        levels += [PASSKEY, PASSKEY_DEVICE_BOUND]
    return levels


def acr_for(level: str) -> str:
    """The ``acr`` ``level`` achieves: its ``APPROVAL_ACR`` entry, or, for a level the setting
    does not list, that of the strongest weaker level it lists (a stronger method never
    achieves less); ``""`` claims no acr."""
    mapping = ciba_settings.APPROVAL_ACR or {}
    for candidate in reversed(LEVELS[: rank(level) + 1]):
        if candidate in mapping:
            return mapping[candidate] or ""
    return ""


def level_for_acr(acr: str) -> str | None:
    """The weakest reachable level achieving ``acr``; None when no reachable level does."""
    for level in reachable_levels():
        if acr and acr_for(level) == acr:
            return level
    return None


def acr_values_supported() -> list[str]:
    """The ``acr`` values this server can produce, weakest first: ``ACR_VALUES_SUPPORTED``
    when the site set it (its own approval policy's values), else those ``APPROVAL_ACR`` maps
    a reachable level to."""
    explicit = ciba_settings.ACR_VALUES_SUPPORTED
    if explicit is not None:
        return list(explicit)
    return list(dict.fromkeys(acr for acr in map(acr_for, reachable_levels()) if acr))


def minimum_level(client: Any = None) -> str:
    """The level every approval for ``client`` must reach, whatever it asked: the strongest of
    ``APPROVAL_MINIMUM_LEVEL``, under FAPI-CIBA ``FAPI_APPROVAL_MINIMUM_LEVEL``, and the
    client's own ``approval_level``."""
    floor = ciba_settings.APPROVAL_MINIMUM_LEVEL or SESSION
    if fapi() and ciba_settings.FAPI_APPROVAL_MINIMUM_LEVEL:
        floor = stronger(ciba_settings.FAPI_APPROVAL_MINIMUM_LEVEL, floor)
    own = getattr(client, "approval_level", "") if client is not None else ""
    return stronger(own, floor) if own else floor


def required_level(auth_request: Any) -> str:
    """The level approving ``auth_request`` needs: ``minimum_level`` of its client, raised to
    the weakest level achieving one of its ``acr_values`` when any is achievable here (so an
    approval never yields a weaker token than asked, essential or not). Requested values no
    level achieves are ignored here: the backchannel endpoint already refused an essential one.
    """
    required = minimum_level(auth_request.client)
    achievable = [level_for_acr(value) for value in (auth_request.acr_values or "").split()]
    achievable = [level for level in achievable if level is not None]
    if achievable:
        required = stronger(min(achievable, key=rank), required)
    return required


def satisfies(achieved: str, required: str) -> bool:
    return rank(achieved) >= rank(required)


def methods_for(required: str) -> list[str]:
    """The consent API methods that can reach ``required`` here, weakest first."""
    return list(
        dict.fromkeys(METHOD_OF_LEVEL[level] for level in reachable_levels() if satisfies(level, required))
    )


def claimed_acr(achieved: str, acr_values: Iterable[str] | str = ()) -> str:
    """The ``acr`` the ID token claims for an approval at ``achieved``: of the requested values
    this approval meets, the strongest; when the request named none this server achieves, the
    acr of ``achieved`` itself."""
    requested = acr_values.split() if isinstance(acr_values, str) else list(acr_values)
    met = [(rank(level), value) for value in requested if (level := level_for_acr(value)) is not None]
    met = [(r, value) for r, value in met if r <= rank(achieved)]
    if met:
        return max(met, key=lambda pair: pair[0])[1]
    return acr_for(achieved)


def stamp_session_auth_time(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: remember in the session when it signed in, so a later tap
    in it claims that moment as ``auth_time`` (OIDC Core §2), not the moment of the tap."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_AUTH_TIME_KEY] = int(timezone.now().timestamp())


def session_auth_time(http_request: Any, user: Any) -> datetime | None:
    """When the session (or token) approving now authenticated: the stamp of
    ``stamp_session_auth_time``, else the user's ``last_login``; None when neither is known."""
    session = getattr(http_request, "session", None)
    stamp = session.get(SESSION_AUTH_TIME_KEY) if session is not None else None
    if isinstance(stamp, int):
        return datetime.fromtimestamp(stamp, tz=UTC)
    return getattr(user, "last_login", None)
