"""Deciding, before the user is asked, whether a CIBA request may go to them at all."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser


class BaseRequestPolicy:
    """Interface: ``check(client=, user=, scopes=, acr_values=)`` returns None or raises
    ``ciba.errors.AccessDenied`` (403, CIBA §13: "denied the request before any user
    interaction").

    This is where a site says no on its own authority: a frozen account, a user who has
    blocked this client, a client limited to some customers, a daily cap per user. It runs
    after the user is identified and before the request is stored or anyone is notified.
    """

    def check(self, *, client: Any, user: AbstractBaseUser, scopes: list[str], acr_values: str) -> None:
        raise NotImplementedError


class AllowAllRequestPolicy(BaseRequestPolicy):
    """Default: every identified, active user may be asked; the user decides."""

    def check(self, *, client: Any, user: AbstractBaseUser, scopes: list[str], acr_values: str) -> None:
        return None
