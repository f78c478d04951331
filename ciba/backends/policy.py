"""Deciding, before the user is asked, whether a CIBA request may go to them at all."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from ..errors import StepUpRequired

__all__ = [
    "AllowAllApprovalPolicy",
    "AllowAllRequestPolicy",
    "BaseApprovalPolicy",
    "BaseRequestPolicy",
    "StepUpRequired",
]


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


class BaseApprovalPolicy:
    """Interface: ``authorize(http_request=, auth_request=, user=) -> acr``.

    Runs when the user approves, before the approval is recorded. Return the ACR the user's
    authentication achieved (``""`` for none: the ID token then carries no ``acr``), or raise
    ``ciba.errors.StepUpRequired`` (also importable from here) when this approval needs more than a tap — for
    example a recent login or a second factor because the client asked for a high
    ``acr_values``. The consent API answers 403 ``step_up_required`` with the policy's
    message, and the request stays pending so the device can authenticate and approve again.
    """

    def authorize(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> str:
        raise NotImplementedError


class AllowAllApprovalPolicy(BaseApprovalPolicy):
    """Default: a tap by the authenticated owner approves; no ``acr`` is claimed.

    Claiming an ``acr`` would be a statement about how strongly the user authenticated, which
    ciba cannot know: a site that can vouch for it plugs in its own policy (docs/integration.md).
    """

    def authorize(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> str:
        return ""
