"""The backchannel authentication request (CIBA §7.1): what a client may ask, checked rule by rule.

* ``rules``: form parameters of an authenticated client → a frozen ``NewRequest``.
* ``request_object``: signed authentication requests (§7.1.1).

The HTTP side (client authentication, throttling, the response) is ``ciba.views.backchannel``.
"""

from .rules import REPEATABLE, NewRequest, single_valued, validate

__all__ = ["REPEATABLE", "NewRequest", "single_valued", "validate"]
