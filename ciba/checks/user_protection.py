"""Protecting the person being asked: per-user limits and subject identifiers (issue 27).

A cap or a rate that cannot be read would fail every backchannel request at run time (or, worse,
let a typo switch a limit off); a subject type that is neither ``public`` nor ``pairwise``
would be advertised in discovery and refused at registration. Both are errors at start-up.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from ..conf import ciba_settings
from ..user_limits import parse_rate
from .codes import Codes

SUBJECT_TYPES = ("public", "pairwise")
CAP_ACTIONS = ("refuse", "supersede")


@checks.register(checks.Tags.security)
def check_subject_types(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``SUBJECT_TYPES_SUPPORTED`` lists only ``public`` and ``pairwise`` (at least one), and
    ``DEFAULT_SUBJECT_TYPE`` is one of them: a client registered without ``subject_type`` gets
    the default, which must be a type discovery advertises."""
    supported = ciba_settings.raw("SUBJECT_TYPES_SUPPORTED")
    default = ciba_settings.raw("DEFAULT_SUBJECT_TYPE")
    problems = []
    if not isinstance(supported, list | tuple) or not supported:
        problems.append("SUBJECT_TYPES_SUPPORTED must be a non-empty list")
    elif unknown := [v for v in supported if v not in SUBJECT_TYPES]:
        problems.append(f"SUBJECT_TYPES_SUPPORTED lists unknown types {unknown!r}")
    elif default not in supported:
        problems.append(f"DEFAULT_SUBJECT_TYPE {default!r} is not in SUBJECT_TYPES_SUPPORTED")
    if not problems:
        return []
    return [
        checks.Error(
            "; ".join(problems) + ".",
            hint='Set CIBA["SUBJECT_TYPES_SUPPORTED"] to a list of "public" and/or "pairwise" and '
            'CIBA["DEFAULT_SUBJECT_TYPE"] to one of them (docs/settings.md).',
            id=Codes.SUBJECT_TYPES,
        )
    ]


def _cap_ok(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


@checks.register(checks.Tags.security)
def check_user_limits(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The per-user limits of ``ciba.user_limits``: each cap ``None`` (off) or a whole number of
    at least 1 (0 would refuse everyone), a rate ``None`` or DRF's ``"20/hour"`` syntax, and an
    action at the cap that is ``refuse`` or ``supersede``."""
    problems = [
        f"{key} must be None or a whole number >= 1, not {ciba_settings.raw(key)!r}"
        for key in ("MAX_PENDING_PER_USER", "MAX_PENDING_PER_CLIENT_USER")
        if not _cap_ok(ciba_settings.raw(key))
    ]
    rate = ciba_settings.raw("USER_REQUEST_RATE")
    if rate is not None:
        try:
            parse_rate(rate)
        except ValueError:
            problems.append(f"USER_REQUEST_RATE must look like '20/hour' (or be None), not {rate!r}")
    action = ciba_settings.raw("PENDING_CAP_ACTION")
    if action not in CAP_ACTIONS:
        problems.append(f"PENDING_CAP_ACTION must be 'refuse' or 'supersede', not {action!r}")
    if not problems:
        return []
    return [
        checks.Error(
            "; ".join(problems) + ".",
            hint="Set them as docs/settings.md describes (defaults: 5 pending per user, 2 per "
            'client and user, "20/hour", "refuse").',
            id=Codes.USER_PROTECTION,
        )
    ]
