"""Which client-registered URLs the server may call: notification endpoints and jwks_uri.

CIBA §10.2 and §10.3 require the client notification endpoint to be HTTPS, and §14 asks
the OP to make sure it is the client's own. A URL we will POST tokens to is an SSRF target
as well, so registration refuses what the callback sender would refuse anyway: plain http,
embedded credentials, fragments, and hosts that are loopback, private, link-local or
otherwise not publicly routable. Names are not resolved here (DNS can change after
registration); the callback sender checks the resolved address again at call time.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext as _

from ..conf import ciba_settings

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_non_public_host(host: str) -> bool:
    """True for literal addresses and names that can only reach this machine or its network."""
    host = host.strip("[]").rstrip(".").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def validate_outbound_url(url: str, *, allow_private: bool | None = None) -> None:
    """Raise ``ValidationError`` unless ``url`` is one the server may send requests to.

    ``CIBA["CALLBACK_ALLOW_HTTP"]`` and ``CIBA["CALLBACK_ALLOW_PRIVATE_NETWORKS"]`` relax the
    rules for development and tests; ``manage.py check --deploy`` warns when either is on.
    """
    URLValidator(schemes=["https", "http"], message=_("Enter a valid https URL."))(url)
    parts = urlsplit(url)
    if parts.scheme != "https" and not ciba_settings.CALLBACK_ALLOW_HTTP:
        raise ValidationError(
            _(
                "The URL must use https. (For development with a client on your own machine, "
                'CIBA["CALLBACK_ALLOW_HTTP"] = True allows http; check --deploy warns while it is on.)'
            ),
            code="insecure_scheme",
        )
    if parts.username or parts.password:
        raise ValidationError(_("The URL must not contain credentials."), code="credentials")
    if parts.fragment:
        raise ValidationError(_("The URL must not contain a fragment."), code="fragment")
    if allow_private is None:
        allow_private = ciba_settings.CALLBACK_ALLOW_PRIVATE_NETWORKS
    if is_non_public_host(parts.hostname or "") and not allow_private:
        raise ValidationError(
            _(
                "The URL must point to a public host, not a loopback, private or link-local address. "
                '(For development, CIBA["CALLBACK_ALLOW_PRIVATE_NETWORKS"] = True allows them.)'
            ),
            code="non_public_host",
        )
