"""Deciding, before the user is asked, whether a CIBA request may go to them at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser

from .. import assurance, passkeys
from ..assurance import Authentication
from ..conf import ciba_settings
from ..errors import InvalidAuthentication, StepUpRequired
from ..services import Approval
from . import reauthentication

__all__ = [
    "AllowAllApprovalPolicy",
    "Approval",
    "AllowAllRequestPolicy",
    "AuthenticationLevelPolicy",
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
    """The default before passkeys (0.x): a tap by the signed-in owner approves, and
    achieves the weakest level this server offers: the first of
    ``CIBA["ACR_VALUES_SUPPORTED"]`` (no ``acr`` when that is empty). No ``amr`` is claimed:
    how the user signed in to the device is the site's knowledge, not ciba's.
    ``AuthenticationLevelPolicy`` is the default now.
    """

    def authorize(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> Approval:
        # The site's own list only: the values derived from APPROVAL_ACR are what a passkey
        # achieves, and a tap must never claim them.
        supported = ciba_settings.ACR_VALUES_SUPPORTED or []
        return Approval(acr=supported[0] if supported else "")


class AuthenticationLevelPolicy(BaseApprovalPolicy):
    """Default: the approval achieves what the user really did on the device, and must reach
    what the request requires (ciba.assurance, docs/authentication.md).

    The consent API's ``authentication`` object says what the user did: nothing (a tap in the
    signed-in session), ``{"method": "password", "password": ...}`` (re-entered now), or
    ``{"method": "passkey", "credential": ...}`` (a WebAuthn assertion over this transaction,
    verified by ``ciba.passkeys``). That sets the level, the RFC 8176 ``amr``, ``auth_time``
    and the evidence stored with the decision. When the level is below
    ``assurance.required_level`` (the site's, the profile's or the client's floor, or the
    request's ``acr_values``) the approval is refused with ``step_up_required``, naming the
    level and the methods that reach it; the request stays pending. The ``acr`` is
    ``assurance.claimed_acr``: never one the approval did not reach.
    """

    def authorize(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> Approval:
        achieved = self.authenticate(http_request=http_request, auth_request=auth_request, user=user)
        required = assurance.required_level(auth_request)
        if not assurance.satisfies(achieved.level, required):
            methods = assurance.methods_for(required)
            raise StepUpRequired(
                f"Approving this request needs {describe(required)}.",
                acr=assurance.acr_for(required),
                level=required,
                methods=methods,
            )
        return Approval(
            acr=assurance.claimed_acr(achieved.level, auth_request.acr_values),
            amr=achieved.amr,
            auth_time=achieved.auth_time,
            evidence=achieved.evidence,
        )

    def authenticate(self, *, http_request: Any, auth_request: Any, user: AbstractBaseUser) -> Authentication:
        """What the user did at approval, verified; ``InvalidAuthentication`` when it fails."""
        data = getattr(http_request, "data", None)
        if not isinstance(data, Mapping):
            data = {}
        proof = data.get("authentication")
        if not proof:
            return Authentication(
                level=assurance.SESSION, auth_time=assurance.session_auth_time(http_request, user)
            )
        # The consent API checked the shape (ApprovalSerializer); a policy called from elsewhere
        # may be handed anything, which is a refusal of what was sent, never a 500.
        method = proof.get("method") if isinstance(proof, Mapping) else None
        if method == "passkey":
            return passkeys.verify_approval(
                http_request,
                auth_request,
                user,
                proof.get("credential"),
                scopes=_scopes(data),
                authorization_details=data.get("authorization_details"),
                displayed_details_hash=_stripped(data.get("displayed_details_hash")) or None,
            )
        if method == "password":
            return reauthentication.verify_password(http_request, user, proof.get("password"))
        raise InvalidAuthentication("Unknown authentication method: use passkey or password.")


def _scopes(data: Mapping[str, Any]) -> list[str] | None:
    """The scopes the approval approves, as the consent API reads them (a JSON list, or the
    repeated field of a form; each stripped, as its serializer does), so the transaction the
    passkey signed is checked against the one being approved."""
    getlist = getattr(data, "getlist", None)
    scopes = getlist("scopes") if getlist is not None and "scopes" in data else data.get("scopes")
    return [_stripped(scope) for scope in scopes] if isinstance(scopes, list) else None


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def describe(level: str) -> str:
    """A level in words, for the step-up message."""
    return {
        assurance.SESSION: "a signed-in session",
        assurance.PASSWORD: "your password",
        assurance.PASSKEY: "a passkey with user verification",
        assurance.PASSKEY_DEVICE_BOUND: "a passkey bound to this device, with user verification",
    }.get(level, level)
