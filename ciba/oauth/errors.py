"""The token endpoint's CIBA errors (§11); they live in the one catalogue, ``ciba.errors``."""

from ..errors import (
    AccessDenied,
    AccessDeniedError,
    AuthorizationPending,
    AuthorizationPendingError,
    ExpiredToken,
    ExpiredTokenError,
    SlowDown,
    SlowDownError,
)

__all__ = [
    "AccessDenied",
    "AccessDeniedError",
    "AuthorizationPending",
    "AuthorizationPendingError",
    "ExpiredToken",
    "ExpiredTokenError",
    "SlowDown",
    "SlowDownError",
]
