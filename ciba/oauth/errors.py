"""Token endpoint errors of CIBA §11 as oauthlib errors.

Defined here rather than imported from ``oauthlib.oauth2.rfc8628`` because DOT 3.4 allows
oauthlib versions that lack that module; the codes are the same, all answered with 400.
"""

from oauthlib.oauth2.rfc6749.errors import OAuth2Error


class AuthorizationPendingError(OAuth2Error):
    error = "authorization_pending"
    description = "The end-user has not yet decided."


class SlowDownError(OAuth2Error):
    error = "slow_down"
    description = "Polling too fast: wait at least the interval, now increased by 5 seconds."


class ExpiredTokenError(OAuth2Error):
    error = "expired_token"
    description = "The auth_req_id has expired; start a new authentication request."


class AccessDeniedError(OAuth2Error):
    error = "access_denied"
    description = "The end-user denied the authentication request."
