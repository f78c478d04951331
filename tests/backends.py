"""Pluggable parts as a site would write them, for tests."""

from ciba.backends.policy import BaseRequestPolicy
from ciba.backends.user_code_verifier import BaseUserCodeVerifier
from ciba.errors import AccessDenied


class PinUserCodeVerifier(BaseUserCodeVerifier):
    """Every user's code is 'pin-' + their username (a stand-in for a hashed per-user PIN)."""

    def verify(self, user, user_code, client):
        return user_code == f"pin-{user.get_username()}"


class NoBobPolicy(BaseRequestPolicy):
    def check(self, *, client, user, scopes, acr_values):
        if user.get_username() == "bob":
            raise AccessDenied("Requests for this account are blocked.")


class SecondFactorForHighAcr:
    """Approving a request that asked for urn:acr:high needs a (stand-in) second factor."""

    def authorize(self, *, http_request, auth_request, user):
        from ciba.backends.policy import StepUpRequired

        if "urn:acr:high" not in auth_request.acr_values.split():
            return ""
        if http_request.headers.get("X-Second-Factor") != "123456":
            raise StepUpRequired("Confirm with your second factor to approve this request.")
        return "urn:acr:high"


class PasskeyForHighAcr:
    """A site that verifies a passkey for strong approvals and says so in acr and amr."""

    def authorize(self, *, http_request, auth_request, user):
        from ciba.backends.policy import Approval

        if http_request.headers.get("X-Passkey") == "ok":
            return Approval(acr="urn:acr:high", amr=("hwk", "user"))
        return Approval(acr="urn:acr:low", amr=("user",))
