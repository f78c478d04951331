"""Errors with the codes and HTTP statuses CIBA Core 1.0 §13 assigns.

Pluggable backends (user resolvers, user-code verifiers, binding-message validators) raise
these; the endpoints turn them into the OAuth JSON error shape. Codes are wire values and
are never translated.
"""

from __future__ import annotations


class CibaError(Exception):
    """An error the backchannel authentication endpoint reports to the client (§13)."""

    error = "invalid_request"
    status_code = 400

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


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


class InvalidClient(CibaError):
    error = "invalid_client"
    status_code = 401


class AccessDenied(CibaError):
    error = "access_denied"
    status_code = 403
