"""Every exception ``ciba`` exposes, with the wire codes and HTTP statuses the specs assign.

One catalogue, so that an error a client or a device sees is defined once:

* ``CibaError`` and its subclasses: errors of the backchannel authentication endpoint (CIBA
  §13) and of the consent API, raised by views, validation rules and pluggable backends, and
  rendered by ``ciba.views.rendering`` into ``{"error", "error_description"}``.
* The token endpoint's CIBA errors (§11) as oauthlib errors, which DOT renders.
* ``DESCRIPTIONS``: the human text of the codes the token endpoint (§11) and push error
  callbacks (§12) share, so both say the same thing.
* ``NotificationError``: a device notification did not reach its target.

(The poll state's own ``PollStateUnavailable`` is not public: ``ciba.services`` turns it into
``TemporarilyUnavailable``.)

Codes are wire values and are never translated.
"""

from __future__ import annotations

import re
from typing import Any

from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .conf import ciba_settings

#: RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_OUTSIDE_DESCRIPTION_CHARSET = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def describe(text: str) -> str:
    """``text`` as a valid ``error_description``: any character outside RFC 6749's set becomes
    ``?``. Descriptions are written without client input; this is the last guard, not the fix."""
    return _OUTSIDE_DESCRIPTION_CHARSET.sub("?", text)


#: What the §11 codes and the §12 push error codes mean, for token responses and callbacks.
DESCRIPTIONS = {
    "authorization_pending": "The end-user has not yet decided.",
    "access_denied": "The end-user denied the authentication request.",
    "expired_token": "The auth_req_id has expired; start a new authentication request.",
    "transaction_failed": "The authorization server could not complete the request.",
}


class CibaError(Exception):
    """An error reported to the caller as ``{"error", "error_description", ...}``.

    ``status_code`` is the HTTP status; ``headers`` are added to the response; ``extra`` are
    further members of the body (the consent API's 409 names the request's ``state``).
    """

    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.headers = headers or {}

    @property
    def extra(self) -> dict[str, Any]:
        return {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = describe(self.description)
        body.update(self.extra)
        return body


# --- the backchannel authentication endpoint (CIBA §13) ------------------------------------


class InvalidRequest(CibaError):
    error = "invalid_request"


class SenderBindingRefused(CibaError):
    """A backchannel request whose DPoP proof or client certificate breaks a binding rule
    (RFC 9449 §§4.3, 10; RFC 8705 §3); ``error`` is the RFC's code for the case."""

    def __init__(self, error: str, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description, headers=headers)
        self.error = error


class InvalidScope(CibaError):
    error = "invalid_scope"


class ExpiredLoginHintToken(CibaError):
    error = "expired_login_hint_token"


class UnknownUserId(CibaError):
    error = "unknown_user_id"


class UnauthorizedClient(CibaError):
    error = "unauthorized_client"


class MissingUserCode(CibaError):
    error = "missing_user_code"


class InvalidUserCode(CibaError):
    error = "invalid_user_code"


class InvalidBindingMessage(CibaError):
    error = "invalid_binding_message"


class InvalidClient(CibaError):
    error = "invalid_client"
    status_code = 401


class TooManyFailedAuthentications(InvalidClient):
    """Too many failed client authentications from this client id or address: refused before
    any check, with ``Retry-After`` (429)."""

    status_code = 429

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            "Too many failed client authentications; retry later.", headers={"Retry-After": str(retry_after)}
        )
        self.retry_after = retry_after


class AccessDenied(CibaError):
    error = "access_denied"
    status_code = 403


# --- the consent API (the authentication device's side) ---------------------------------


class RequestNotPending(CibaError):
    """The request was decided, issued or expired: nothing changed (409, with its ``state``)."""

    error = "request_not_pending"
    status_code = 409

    def __init__(self, state: str) -> None:
        super().__init__(f"The request is {state}.")
        self.state = state

    @property
    def extra(self) -> dict[str, Any]:
        return {"state": self.state}


class InvalidApproval(CibaError):
    """The approval asks for something the request does not allow (scopes never requested)."""

    error = "invalid_scope"


class StepUpRequired(CibaError):
    """The approval needs stronger authentication first; ``detail`` says what to do (403).

    Raised by approval policies (``CIBA["APPROVAL_POLICY_CLASS"]``); the request stays
    pending so the device can authenticate and approve again.
    """

    error = "step_up_required"
    status_code = 403

    def __init__(self, detail: str, *, acr: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.acr = acr


class TemporarilyUnavailable(CibaError):
    """A part the decision depends on is down; nothing was decided and a retry may succeed."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(self, description: str = "Try again in a moment.") -> None:
        super().__init__(description, headers={"Retry-After": "1"})


# --- the token endpoint (CIBA §11), as oauthlib errors DOT renders ----------------------
# Defined here rather than imported from ``oauthlib.oauth2.rfc8628`` because DOT 3.4 allows
# oauthlib versions that lack that module; the codes are the same, all answered with 400.


class AuthorizationPendingError(OAuth2Error):
    error = "authorization_pending"
    description = DESCRIPTIONS["authorization_pending"]


class SlowDownError(OAuth2Error):
    """§11: the client must add the increment to its interval "for this and all subsequent
    requests"; the description says by how much this server increased it."""

    error = "slow_down"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "description",
            "Polling too fast: wait at least the interval, now increased by "
            f"{ciba_settings.SLOW_DOWN_INCREMENT} seconds.",
        )
        super().__init__(**kwargs)


class TooManyFailedAuthenticationsError(OAuth2Error):
    """``TooManyFailedAuthentications`` at the token endpoint: 429 with ``Retry-After``."""

    error = "invalid_client"
    status_code = 429
    description = "Too many failed client authentications; retry later."

    def __init__(self, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SenderConstraintError(OAuth2Error):
    """A token request that breaks a binding rule (RFC 8705 §3, RFC 9449 §§5, 8): 400 with the
    rule's error code; ``use_dpop_nonce`` carries the nonce to use (``DPoP-Nonce``)."""

    status_code = 400

    def __init__(self, *, error: str, description: str, nonce: str = "", **kwargs: Any) -> None:
        self.error = error
        self.nonce = nonce
        super().__init__(description=description, **kwargs)

    @property
    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": self.nonce} if self.nonce else {}


class ExpiredTokenError(OAuth2Error):
    error = "expired_token"
    description = DESCRIPTIONS["expired_token"]


class AccessDeniedError(OAuth2Error):
    error = "access_denied"
    description = DESCRIPTIONS["access_denied"]


# >>> issue21-A errors
class AuthenticationBusy(TemporarilyUnavailable):
    """Too many expensive client authentication checks (slow hashes, ``jwks_uri`` fetches) are in
    flight (``CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT``): 503 with ``Retry-After`` at once,
    instead of queueing behind them. Backchannel endpoint; ``AuthenticationBusyError`` is the
    token endpoint's."""

    def __init__(self, *, retry_after: int = 1) -> None:
        super().__init__("The server is busy checking client credentials; retry in a moment.")
        self.headers["Retry-After"] = str(retry_after)
        self.retry_after = retry_after


class AuthenticationBusyError(OAuth2Error):
    """``AuthenticationBusy`` at the token endpoint: 503 ``temporarily_unavailable``, ``Retry-After``."""

    error = "temporarily_unavailable"
    status_code = 503
    description = "The server is busy checking client credentials; retry in a moment."

    def __init__(self, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


# <<< issue21-A
# >>> issue21-B errors
# <<< issue21-B
# >>> issue21-D errors
# --- the introspection endpoint (RFC 7662 §2.3, RFC 6750 §3.1) ------------------------------


class NotAResourceServer(CibaError):
    """A client that authenticated but that the site has not designated as a resource server
    (``ciba.ResourceServer``) asked to introspect a token (403)."""

    error = "unauthorized_client"
    status_code = 403


class InvalidToken(CibaError):
    """The bearer token a caller presented is invalid, expired or revoked (401)."""

    error = "invalid_token"
    status_code = 401


class InsufficientScope(CibaError):
    """A valid bearer token that does not grant what the caller asked for (403)."""

    error = "insufficient_scope"
    status_code = 403


# <<< issue21-D


# --- outbound work ------------------------------------------------------------------------


class NotificationError(Exception):
    """A device notification did not reach its target. ``transient`` failures are retried."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
