"""``login_hint_token``\\ s this server issues itself: the device page's "show my code".

Being built for issue 28 (helper B). Interface (pinned):

- ``enabled() -> bool``: ``LOGIN_HINT_TOKEN_ISSUANCE``.
- ``issue(user, http_request) -> Issued``: a signed token for ``user`` carrying an opaque,
  single-use handle (``ciba.models.LoginHintHandle``), and when it expires.
- ``is_own(token, http_request) -> bool``: whether ``token`` claims to be one of ours (so the
  resolver routes it here instead of to the client's keys); cheap, no signature check.
- ``redeem(token, http_request) -> user``: verify (signature, issuer, audience, expiry), then
  consume the handle exactly once across processes; raises ``ExpiredLoginHintToken``,
  ``InvalidRequest`` or ``UnknownUserId`` as CIBA §13 names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser


@dataclass(frozen=True)
class Issued:
    token: str
    expires_at: datetime
    expires_in: int


def enabled() -> bool:
    raise NotImplementedError


def issue(user: AbstractBaseUser, http_request: Any) -> Issued:
    raise NotImplementedError


def is_own(token: str, http_request: Any) -> bool:
    return False


def redeem(token: str, http_request: Any) -> AbstractBaseUser:
    raise NotImplementedError
