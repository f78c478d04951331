"""Pluggable parts as a site would write them, for tests."""

from ciba.backends.policy import BaseRequestPolicy
from ciba.backends.user_code import BaseUserCodeVerifier
from ciba.errors import AccessDenied


class PinUserCodeVerifier(BaseUserCodeVerifier):
    """Every user's code is 'pin-' + their username (a stand-in for a hashed per-user PIN)."""

    def verify(self, user, user_code, client):
        return user_code == f"pin-{user.get_username()}"


class NoBobPolicy(BaseRequestPolicy):
    def check(self, *, client, user, scopes, acr_values):
        if user.get_username() == "bob":
            raise AccessDenied("Requests for this account are blocked.")
