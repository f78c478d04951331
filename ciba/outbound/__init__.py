"""Calls from this server to URLs it did not choose: client notification endpoints,
``jwks_uri``, push gateways and Web Push services.

* ``policy``: which URLs may be called at all (https, public hosts; checked at registration
  and again at call time).
* ``http``: the hardened session every such call goes through, with a total deadline per call
  (``kept_session``: a thread's session whose connections serve its next callbacks).
* ``outcome``: how an answer is classified, and the one backoff rule for retries.
"""

from .http import DeadlineExceeded, OutboundError, close_kept_session, get_json, kept_session, session
from .outcome import Outcome, backoff, is_transient, parse_retry_after
from .url_policy import is_non_public_host, validate_outbound_url

__all__ = [
    "DeadlineExceeded",
    "Outcome",
    "OutboundError",
    "backoff",
    "close_kept_session",
    "get_json",
    "is_non_public_host",
    "is_transient",
    "kept_session",
    "parse_retry_after",
    "session",
    "validate_outbound_url",
]
