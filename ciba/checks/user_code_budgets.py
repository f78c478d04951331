"""User-code budgets: how many wrong user codes may be tried (``ciba.user_codes``).

Each budget bounds what a client may spend on password hashes; one that is not a positive whole
number refuses codes for everyone or fails at request time. Whether a user-code verifier is
configured is checked with the other CIBA settings (``configuration``).
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from ..conf import ciba_settings
from .codes import Codes


@checks.register(checks.Tags.security)
def check_user_code_budgets(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The budgets of wrong user codes bound what a client may spend on password hashes
    (``ciba.user_codes``): each must be a positive whole number, or codes are refused for
    everyone (0) or the check fails at request time (anything else)."""
    keys = ("USER_CODE_MAX_FAILURES", "USER_CODE_MAX_FAILURES_PER_CLIENT", "USER_CODE_LOCKOUT_SECONDS")
    bad = [
        key
        for key in keys
        if isinstance(ciba_settings.raw(key), bool)
        or not isinstance(ciba_settings.raw(key), int)
        or ciba_settings.raw(key) < 1
    ]
    if not bad:
        return []
    return [
        checks.Error(
            f"CIBA user-code budgets must be positive whole numbers: {', '.join(bad)}.",
            hint="Set them as docs/settings.md describes (defaults: 5 per client and user, 30 per "
            "client, per 900 seconds).",
            id=Codes.USER_CODE_BUDGETS,
        )
    ]
