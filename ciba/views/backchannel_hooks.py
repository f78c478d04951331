"""The backchannel endpoint's checks: who the client is, whether it may use CIBA, how often.

Each is a plain function (``client_auth.authenticate_client``, ``check_ciba_client``,
``throttle``), which the backchannel view calls directly, and a DRF hook that calls it
(``ClientAuthentication``, ``IsCibaClient``, ``ClientRateThrottle``), for the DRF views: the
cancel endpoint, and the backchannel view's own answers to anything but a form POST. Each
raises the ``ciba.errors`` error CIBA §13 names (the throttle DRF's ``Throttled``), rendered by
``ciba.views.rendering``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import Throttled
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from ..backchannel import REPEATABLE, single_valued
from ..client_auth import authenticate_client
from ..conf import ciba_settings
from ..errors import UnauthorizedClient
from ..outages import is_outage

logger = logging.getLogger("ciba.outages")


def check_ciba_client(client: Any) -> None:
    """CIBA §4: only a confidential client registered for the CIBA grant, in a mode this server
    supports, that can receive ID tokens. Checked at every request, whatever ``clean()`` saw:
    rows also arrive through the ORM, fixtures and data migrations."""
    if not client.registers_ciba:
        raise UnauthorizedClient("This client is not registered for CIBA.")
    if problems := client.ciba_problems():
        raise UnauthorizedClient(f"This client cannot use CIBA: {'; '.join(problems)}.")


def throttle(client: Any) -> None:
    """Raise DRF's ``Throttled`` (429, ``Retry-After``) when ``client`` used up
    ``BACKCHANNEL_THROTTLE_RATE``: ``ClientRateThrottle`` itself, as DRF's ``check_throttles``
    runs it, so the history in the cache and the wait are the same whichever view counts."""
    limiter = ClientRateThrottle()
    if not limiter.allow_request(_Authenticated(client), None):
        raise Throttled(limiter.wait())


class _Authenticated:
    """What ``ClientRateThrottle`` reads of a request: its client, as DRF's ``request.auth``."""

    __slots__ = ("auth",)

    def __init__(self, client: Any) -> None:
        self.auth = client


class ClientAuthentication(BaseAuthentication):
    """The four methods of CIBA §7.1 (``ciba.client_auth``): ``request.auth`` is the client.

    Never returns ``None``: a request without credentials is ``invalid_client``, not
    anonymous. The form is read here, so a repeated parameter is refused before anything is
    verified (``invalid_request``).
    """

    def authenticate(self, request: Any) -> tuple[Any, Any]:
        params = single_valued(request.data, repeatable=REPEATABLE)
        return AnonymousUser(), authenticate_client(request, params)

    def authenticate_header(self, request: Any) -> str:
        return 'Basic realm="ciba"'


class IsCibaClient(BasePermission):
    """``check_ciba_client`` for DRF views."""

    def has_permission(self, request: Any, view: Any) -> bool:
        check_ciba_client(request.auth)
        return True


class ClientRateThrottle(SimpleRateThrottle):
    """``CIBA["BACKCHANNEL_THROTTLE_RATE"]`` requests per client (DRF rate syntax; None = off).

    Each accepted request pops a notification on a person's phone, so a misbehaving or
    compromised client must not be able to flood users (CIBA §14). The limit is per client id,
    not per IP address: many clients share egress addresses, and one client may use many.

    With the cache unreachable the throttle lets requests through (fails open): the client is
    authenticated, and refusing every CIBA request for a cache outage would be the worse harm.
    """

    scope = "ciba_backchannel"

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.warning("Backchannel throttle skipped: the cache is unavailable (%s)", type(exc).__name__)
            return True

    def get_rate(self) -> str | None:
        return ciba_settings.BACKCHANNEL_THROTTLE_RATE

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": request.auth.client_id}
