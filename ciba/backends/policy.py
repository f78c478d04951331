"""Deciding, before the user is asked, whether a CIBA request may go to them at all."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from ..conf import ciba_settings
from ..errors import StepUpRequired
from ..services import Approval

__all__ = [
    "AllowAllApprovalPolicy",
    "Approval",
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
    """Interface: ``authorize(*, http_request, auth_request, user) -> Approval`` (or an acr string).

    Runs when the user approves, before the approval is recorded. Return what the user's
    authentication achieved — ``Approval(acr=..., amr=(...))``, the ``acr`` and RFC 8176
    ``amr`` values the ID token then carries — or raise ``ciba.errors.StepUpRequired`` (also
    importable from here) when this approval needs more than a tap: a recent login or a second
    factor because the client asked for a high ``acr_values``. The consent API answers 403
    ``step_up_required`` with the policy's message, and the request stays pending so the
    device can authenticate and approve again. When the client asked for an essential acr
    (``auth_request.acr_essential``), an approval reaching none of ``auth_request.acr_values``
    is refused the same way, whatever the policy returned.
    """

    def authorize(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> Approval | str:
        raise NotImplementedError


class AllowAllApprovalPolicy(BaseApprovalPolicy):
    """Default: a tap by the signed-in owner approves, and achieves the weakest level this
    server offers: the first of ``CIBA["ACR_VALUES_SUPPORTED"]`` (no ``acr`` when that is
    empty). No ``amr`` is claimed: how the user signed in to the device is the site's
    knowledge, not ciba's. A site that verifies more (a second factor, a fresh login) plugs in
    its own policy and returns the stronger acr and its amr (docs/integration.md).
    """

    def authorize(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> Approval:
        supported = ciba_settings.ACR_VALUES_SUPPORTED
        return Approval(acr=supported[0] if supported else "")
