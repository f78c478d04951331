"""The device page's "show my code" (``ciba.hint_tokens``): its lifetime, and the issuer its
codes are signed for.

A code is a bearer credential for starting a request in the user's name while it lives, so its
lifetime is bounded (long enough for a camera to read it, short enough that a photographed code
is soon worthless). Its ``iss`` and ``aud`` are this server's issuer, which without
``OIDC_ISS_ENDPOINT`` is derived from the host each request names: a code shown under one host
name is refused at a backchannel endpoint reached under another.
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from oauth2_provider.settings import oauth2_settings

from ..conf import ciba_settings
from .codes import Codes

#: The bounds of LOGIN_HINT_TOKEN_LIFETIME, in seconds.
SHORTEST, LONGEST = 10, 600


@checks.register()
def check_hint_tokens(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``LOGIN_HINT_TOKEN_ISSUANCE`` a boolean, ``LOGIN_HINT_TOKEN_LIFETIME`` whole seconds
    within bounds (``ciba.E052``); with issuance on, an issuer that does not depend on the host
    (``ciba.W024``)."""
    messages: list[checks.CheckMessage] = []
    issuance = ciba_settings.raw("LOGIN_HINT_TOKEN_ISSUANCE")
    lifetime = ciba_settings.raw("LOGIN_HINT_TOKEN_LIFETIME")
    problems = []
    if not isinstance(issuance, bool):
        problems.append("LOGIN_HINT_TOKEN_ISSUANCE must be True or False")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not SHORTEST <= lifetime <= LONGEST:
        problems.append(f"LOGIN_HINT_TOKEN_LIFETIME must be whole seconds from {SHORTEST} to {LONGEST}")
    if problems:
        messages.append(
            checks.Error(
                f"{'; '.join(problems)}.",
                hint="A shown code is a bearer credential while it lives: long enough for a camera "
                "to read it, short enough that a photographed one is soon worthless (default 120).",
                id=Codes.HINT_TOKENS,
            )
        )
    if issuance is True and not oauth2_settings.OIDC_ISS_ENDPOINT:
        messages.append(
            checks.Warning(
                "Show my code is on, and the issuer its codes are signed for is derived from each "
                "request's host: a code shown on a page under one host name is refused "
                "(invalid_request) at a backchannel endpoint reached under another.",
                hint='Set OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"] to the issuer URL.',
                id=Codes.HINT_TOKEN_ISSUER_FROM_HOST,
            )
        )
    return messages
