"""The token endpoint's CIBA errors (§11); they live in the one catalogue, ``ciba.errors``."""

from ..errors import AccessDeniedError, AuthorizationPendingError, ExpiredTokenError, SlowDownError

__all__ = ["AccessDeniedError", "AuthorizationPendingError", "ExpiredTokenError", "SlowDownError"]
