"""Every exception ``ciba`` exposes, with the wire codes and HTTP statuses the specs assign.

One catalogue, so that an error a client or a device sees is defined once:

* ``CibaError`` and its subclasses, one class per protocol error: the backchannel
  authentication endpoint's (CIBA §13), the token endpoint's (§11), sender-constrained
  tokens' (RFC 8705, RFC 9449: ``BindingRefused``), introspection's and the consent API's.
  A ``CibaError`` is also an oauthlib ``OAuth2Error``, so the same class is raised wherever
  the error arises (a view, a validation rule, a backend, the token endpoint's validator)
  and rendered by DOT or by ``ciba.views.rendering``; every body comes from ``error_body``.
* ``DESCRIPTIONS``: the human text of the codes the token endpoint (§11) and push error
  callbacks (§12) share, so both say the same thing.
* ``NotificationError``: a device notification did not reach its target.

The names the two families had before they were one (``AccessDeniedError``,
``AuthorizationPendingError``, ``SlowDownError``, ``ExpiredTokenError``,
``TooManyFailedAuthenticationsError``, ``AuthenticationBusyError``, ``SenderConstraintError``,
``SenderBindingRefused``) remain importable as aliases.

(The poll state's own ``PollStateUnavailable`` is not public: ``ciba.services`` turns it into
``TemporarilyUnavailable``.)

Codes are wire values and are never translated.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from .conf import ciba_settings

logger = logging.getLogger("ciba.outages")

#: RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_OUTSIDE_DESCRIPTION_CHARSET = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")
#: "§7.1" reads "section 7.1", "§§5-7" "sections 5-7".
_SECTION_SIGNS = re.compile(r"(§§?)\s*")
#: The ASCII spelling of characters a description may hold that RFC 6749 does not allow and
#: that Unicode's compatibility decomposition leaves alone: typographic quotes (and the ``"``
#: a quoted-string cannot hold), dashes, the ellipsis, arrows, and the backslash.
_ASCII_SPELLINGS = str.maketrans(
    {
        **dict.fromkeys('"\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2032\u2033\u00ab\u00bb', "'"),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\t\n\r\v\f\u00a0\u2007\u202f", " "),
        "\u2026": "...",
        "\u2192": "->",
        "\u00d7": "x",
        "\u2264": "<=",
        "\u2265": ">=",
        "\\": "/",
    }
)


def describe(text: str) -> str:
    """``text`` as a valid ``error_description`` (RFC 6749 §5.2 allows printable ASCII but ``"``
    and ``\\``) that still reads as written: "§7.1" becomes "section 7.1", typographic quotes and
    dashes their ASCII look-alikes, accented letters their base letters (a translated message).
    Only a character with no ASCII spelling at all becomes ``?``.

    Descriptions are written in ASCII and without client input; this keeps what a registration
    rule, DOT, oauthlib or a translation says readable on the wire instead of full of ``?``.
    """
    text = str(text)  # DOT's descriptions are lazy translations
    if not _OUTSIDE_DESCRIPTION_CHARSET.search(text):
        return text
    text = _SECTION_SIGNS.sub(lambda m: "sections " if len(m.group(1)) == 2 else "section ", text)
    # Spelled before the decomposition and after it (a full-width quote decomposes to ``"``).
    text = unicodedata.normalize("NFKD", text.translate(_ASCII_SPELLINGS))
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_ASCII_SPELLINGS)
    return _OUTSIDE_DESCRIPTION_CHARSET.sub("?", text)


#: What the §11 codes and the §12 push error codes mean, for token responses and callbacks.
DESCRIPTIONS = {
    "authorization_pending": "The end-user has not yet decided.",
    "access_denied": "The end-user denied the authentication request.",
    "expired_token": "The auth_req_id has expired; start a new authentication request.",
    "transaction_failed": "The authorization server could not complete the request.",
}


def error_body(error: str, description: str = "", **members: Any) -> dict[str, Any]:
    """The one error body every endpoint answers (RFC 6749 §5.2, CIBA §§11, 13):
    ``{"error", "error_description", ...members}``, the description kept within RFC 6749's
    character set and left out when empty."""
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = describe(description)
    body.update(members)
    return body


class CibaError(OAuth2Error):
    """A protocol error: one class per error code, answered the same way by every endpoint.

    ``error`` is the wire code, ``status_code`` the HTTP status, ``description`` the default
    ``error_description``; ``headers`` are added to the response; ``extra`` are further
    members of the body (the consent API's 409 names the request's ``state``). Being an
    oauthlib ``OAuth2Error`` too, the same instance is rendered by DOT's token endpoint
    (``json``, ``headers``, ``status_code``) and by ciba's DRF views and introspection
    (``as_dict``), both through ``error_body``. ``request`` (an oauthlib request only) is
    oauthlib's: the body then repeats the request's ``state``, as oauthlib's errors do.

    Adding an error is one subclass here::

        class InvalidAuthorizationDetails(CibaError):
            error = "invalid_authorization_details"      # RFC 9396 §5
            description = "The authorization_details are not understood."

        raise InvalidAuthorizationDetails()              # 400, in a DRF view or in oauthlib
    """

    error = "invalid_request"
    status_code = 400
    description = ""

    def __init__(
        self,
        description: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        status_code: int | None = None,
        request: Any = None,
    ) -> None:
        super().__init__(description=description or None, status_code=status_code, request=request)
        self.args = (self.description or self.error,)
        self._headers = dict(headers or {})

    @property
    def headers(self) -> dict[str, str]:
        """The response headers this error adds (never oauthlib's ``Bearer`` challenge: each
        endpoint answers a 401 with its own)."""
        return self._headers

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = dict(value or {})

    @property
    def extra(self) -> dict[str, Any]:
        return {}

    def as_dict(self) -> dict[str, Any]:
        members: dict[str, Any] = {}
        if self.uri:
            members["error_uri"] = self.uri
        if self.state:
            members["state"] = self.state
        return error_body(self.error, self.description, **{**members, **self.extra})

    @property
    def twotuples(self) -> list[tuple[str, Any]]:
        return list(self.as_dict().items())


# --- the backchannel authentication endpoint (CIBA §13) ------------------------------------


class InvalidRequest(CibaError):
    error = "invalid_request"


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


class InvalidAuthorizationDetails(CibaError):
    """RFC 9396 §5: unknown type, malformed object, or a type the client may not send."""

    error = "invalid_authorization_details"


class InvalidClient(CibaError):
    error = "invalid_client"
    status_code = 401


class TooManyFailedAuthentications(InvalidClient):
    """Too many failed client authentications from this client id or address: refused before
    any check, with ``Retry-After`` (429), at the backchannel and token endpoints alike."""

    status_code = 429
    description = "Too many failed client authentications; retry later."

    def __init__(self, *, retry_after: int, request: Any = None) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)}, request=request)
        self.retry_after = retry_after


class AccessDenied(CibaError):
    """403 at the backchannel endpoint (§13); the token endpoint raises it with
    ``status_code=400`` and ``DESCRIPTIONS["access_denied"]`` (§11, RFC 6749 §5.2)."""

    error = "access_denied"
    status_code = 403


# --- the token endpoint (CIBA §11) -----------------------------------------------------------


class AuthorizationPending(CibaError):
    error = "authorization_pending"
    description = DESCRIPTIONS["authorization_pending"]


class SlowDown(CibaError):
    """§11: the client must add the increment to its interval "for this and all subsequent
    requests"; the description says by how much this server increased it."""

    error = "slow_down"

    def __init__(self, description: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            description
            or "Polling too fast: wait at least the interval, now increased by "
            f"{ciba_settings.SLOW_DOWN_INCREMENT} seconds.",
            **kwargs,
        )


class ExpiredToken(CibaError):
    error = "expired_token"
    description = DESCRIPTIONS["expired_token"]


class UnsupportedGrantType(CibaError):
    error = "unsupported_grant_type"


class InvalidTarget(CibaError):
    """RFC 8707 §2: a ``resource`` the server cannot use."""

    error = "invalid_target"


# --- sender-constrained tokens (RFC 8705 §3, RFC 9449) --------------------------------------


class BindingRefused(CibaError):
    """A request or a token presentation that breaks a binding rule: a DPoP proof, a client
    certificate, a bound token or refresh token not shown with its key or certificate.
    ``error`` is the RFC's code for the case (``invalid_request``, ``invalid_dpop_proof``,
    ``use_dpop_nonce``, ``invalid_token``, ``invalid_grant``); ``nonce`` is the ``DPoP-Nonce``
    to offer. Raised by ``ciba.sender`` and answered as it is by every endpoint (a protected
    resource puts it in its ``WWW-Authenticate`` challenge)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        nonce: str = "",
        headers: dict[str, str] | None = None,
        request: Any = None,
    ) -> None:
        self.error = error
        self.nonce = nonce
        super().__init__(
            description,
            headers={**(headers or {}), **({"DPoP-Nonce": nonce} if nonce else {})},
            request=request,
        )


class InvalidDPoPProof(BindingRefused):
    """RFC 9449 §7.1: the DPoP proof is missing, malformed or not for this request."""

    def __init__(self, description: str, **kwargs: Any) -> None:
        super().__init__("invalid_dpop_proof", description, **kwargs)


class UseDPoPNonce(BindingRefused):
    """RFC 9449 §8: the proof must carry a (fresh) nonce of this server."""

    def __init__(self, description: str, **kwargs: Any) -> None:
        super().__init__("use_dpop_nonce", description, **kwargs)


# --- the consent API (the authentication device's side) ---------------------------------


class InvalidGrant(CibaError):
    """RFC 6749 §5.2 ``invalid_grant`` (400) outside the token endpoint's own flow: the
    ``auth_req_id`` sent to the cancel endpoint is not one this client may cancel (unknown,
    another client's, or already decided)."""

    error = "invalid_grant"


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

    def __init__(
        self, detail: str, *, acr: str = "", level: str = "", methods: list[str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.acr = acr
        self.level = level
        self.methods = list(methods or [])

    @property
    def extra(self) -> dict[str, Any]:
        """What the device must do: the ``level`` to reach (ciba.assurance), the consent API
        ``methods`` that reach it, and the ``acr`` that level achieves; each only when known."""
        members: dict[str, Any] = {}
        if self.acr:
            members["acr"] = self.acr
        if self.level:
            members["level"] = self.level
        if self.methods:
            members["methods"] = self.methods
        return members


class InvalidAuthentication(CibaError):
    """What the device sent to authenticate the approval (a passkey assertion, a password, an
    enrollment) was refused; ``description`` says why (400). Nothing was decided: the request
    stays pending, and the device may ask for a new challenge and try again."""

    error = "invalid_authentication"
    status_code = 400


class TemporarilyUnavailable(CibaError):
    """A part the answer depends on is down; nothing was decided and a retry may succeed
    (503, ``Retry-After`` of ``retry_after`` seconds; ``None``: no ``Retry-After``)."""

    error = "temporarily_unavailable"
    status_code = 503

    def __init__(
        self, description: str = "Try again in a moment.", *, retry_after: int | None = 1, **kwargs: Any
    ) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        super().__init__(description, headers=headers, **kwargs)


class AuthenticationBusy(TemporarilyUnavailable):
    """Too many expensive client authentication checks (slow hashes, ``jwks_uri`` fetches) are in
    flight (``CLIENT_AUTH_EXPENSIVE_CHECKS_IN_FLIGHT``): 503 with ``Retry-After`` at once,
    instead of queueing behind them, at the backchannel and token endpoints alike."""

    def __init__(self, *, retry_after: int = 1, request: Any = None) -> None:
        super().__init__(
            "The server is busy checking client credentials; retry in a moment.",
            retry_after=retry_after,
            request=request,
        )
        self.retry_after = retry_after


def outage(exc: BaseException) -> TemporarilyUnavailable:
    """The error a client sees when a dependency is down (``ciba.outages.is_outage``), at every
    endpoint: ciba's DRF views and ``server_error`` (``ciba.views.rendering``) and the token
    endpoint (``ciba.oauth.view``). Logged once here, without the traceback (the cause is the
    dependency, not this request), with ``Retry-After`` of ``OUTAGE_RETRY_AFTER`` seconds."""
    logger.warning("Answered 503: a dependency is unavailable (%s: %s)", type(exc).__name__, exc)
    error = TemporarilyUnavailable("The service is temporarily unavailable; retry in a moment.")
    error.headers["Retry-After"] = str(max(1, int(ciba_settings.OUTAGE_RETRY_AFTER)))
    return error


# --- the introspection endpoint (RFC 7662 §2.3, RFC 6750 §3.1) ------------------------------


class NotAResourceServer(CibaError):
    """A client that authenticated but that the site has not designated as a resource server
    (``ciba.ResourceServer``) asked to introspect a token (403)."""

    error = "unauthorized_client"
    status_code = 403


class InvalidToken(CibaError):
    """The bearer token a caller presented is invalid, expired or revoked (401, with the
    ``Bearer`` challenge of RFC 6750 §3)."""

    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str | None = None, **kwargs: Any) -> None:
        super().__init__(description, **kwargs)
        self.headers.setdefault("WWW-Authenticate", f'Bearer error="{self.error}"')


class InsufficientScope(CibaError):
    """A valid bearer token that does not grant ``scope``, which the caller needs (403, with
    the ``Bearer`` challenge naming it, RFC 6750 §3.1)."""

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, description: str | None = None, *, scope: str, **kwargs: Any) -> None:
        super().__init__(description, **kwargs)
        self.scope = scope
        self.headers.setdefault("WWW-Authenticate", f'Bearer error="{self.error}", scope="{scope}"')


# --- dynamic client registration (RFC 7591 §3.2.2, RFC 7592 §2) ----------------------------


class InvalidClientMetadata(CibaError):
    """A metadata value is invalid, or the server refuses it (the description names the field)."""

    error = "invalid_client_metadata"


class InvalidRedirectUri(CibaError):
    """A ``redirect_uris`` value is invalid."""

    error = "invalid_redirect_uri"


class InvalidSoftwareStatement(CibaError):
    """The software statement cannot be read or verified (signature, expiry, claims)."""

    error = "invalid_software_statement"


class UnapprovedSoftwareStatement(CibaError):
    """A well-formed software statement from an issuer this server does not trust, or that the
    server does not accept for this registration."""

    error = "unapproved_software_statement"


# --- names from before the two families were one ---------------------------------------------
AccessDeniedError = AccessDenied
AuthorizationPendingError = AuthorizationPending
SlowDownError = SlowDown
ExpiredTokenError = ExpiredToken
TooManyFailedAuthenticationsError = TooManyFailedAuthentications
AuthenticationBusyError = AuthenticationBusy
SenderConstraintError = BindingRefused
SenderBindingRefused = BindingRefused


# --- outbound work ------------------------------------------------------------------------


class NotificationError(Exception):
    """A device notification did not reach its target. ``transient`` failures are retried."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
