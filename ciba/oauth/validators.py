"""DOT's request validator, taught the CIBA grant."""

from __future__ import annotations

import base64
import hashlib
import re
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from django.db import router, transaction
from django.db.models import F
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

from .. import client_auth, services
from ..conf import ciba_settings
from ..constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE, RT_HASH_CLAIM
from ..errors import InvalidClient
from ..models import AuthenticationRequest
from ..poll_state import SLOW_DOWN, poll_state
from .errors import AccessDeniedError, AuthorizationPendingError, ExpiredTokenError, SlowDownError

State = AuthenticationRequest.State
AUTH_REQ_ID_SYNTAX = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


class CibaValidator(OAuth2Validator):
    """Set it as ``OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]`` (``ciba.E005`` checks this)."""

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        # DOT maps grant names to its own application grant types and asserts the name is
        # known, so the CIBA grant and refresh-by-a-CIBA-client are answered here first.
        if grant_type == CIBA_GRANT_TYPE:
            return request.client.allows_grant_type(CIBA_GRANT_TYPE)
        if grant_type == "refresh_token" and getattr(request.client, "is_ciba_client", False):
            return request.client.allows_grant_type("refresh_token")
        return super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs)

    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        """Token-endpoint client authentication, shared with the backchannel endpoint.

        CIBA clients must use the method they registered, and JWT assertions (RFC 7523) are
        verified here for every client; other clients keep DOT's own behaviour (which also
        covers public device-flow clients and client metadata documents).
        """
        authorization = request.headers.get("HTTP_AUTHORIZATION") or request.headers.get("Authorization", "")
        params = dict(request.decoded_body or [])
        try:
            credentials = client_auth.read_credentials(authorization, params)
        except InvalidClient:
            return False
        client = client_auth.load_client(credentials.client_id) if credentials else None
        uses_jwt = credentials is not None and credentials.method in client_auth.JWT_METHODS
        if not uses_jwt and not getattr(client, "is_ciba_client", False):
            return super().authenticate_client(request, *args, **kwargs)
        try:
            client = client_auth.verify_credentials(credentials, client, request)
        except InvalidClient:
            return False
        if not client.is_usable(request):
            return False
        request.client = client
        if credentials.method in client_auth.SECRET_METHODS:
            request.ciba_credentials = credentials  # verified: the poll state may remember them
        return True

    def _check_secret(self, provided_secret: str, stored_secret: str) -> bool:
        # DOT's own secret check, made cheap for repeat authentications (see ciba.client_auth).
        return client_auth.check_secret(provided_secret, stored_secret)

    def ciba_token_transaction(self) -> AbstractContextManager:
        return transaction.atomic(using=router.db_for_write(AuthenticationRequest))

    def validate_ciba_auth_req_id(self, client_id: str, auth_req_id: str, request: Any) -> None:
        """Raise the CIBA §11 error for this poll, or attach the approved request.

        A request belonging to another client is indistinguishable from an unknown one
        (``invalid_grant``), so ids cannot be probed across clients.
        """
        now = timezone.now()
        if not AUTH_REQ_ID_SYNTAX.match(auth_req_id):
            # CIBA §7.3's alphabet; anything else (NUL, which PostgreSQL cannot even compare,
            # or a megabyte of text) was never issued by this server.
            raise InvalidGrantError(description="Unknown or already used auth_req_id.", request=request)
        ar = (
            AuthenticationRequest.objects.filter(auth_req_id=auth_req_id, client=request.client)
            .only(
                "pk",
                "state",
                "expires_at",
                "interval",
                "last_polled_at",
                "scope",
                "granted_scope",
                "user_id",
                "decided_at",
                "acr",
                "auth_req_id",
            )
            .first()
        )
        if ar is None or ar.state == State.ISSUED:
            raise InvalidGrantError(description="Unknown or already used auth_req_id.", request=request)
        state = ar.effective_state(now)
        if state == State.EXPIRED:
            raise ExpiredTokenError(request=request)
        if state == State.DENIED:
            raise AccessDeniedError(request=request)
        if state == State.PENDING:
            self._record_poll(ar, now, request)
        request.ciba_request = ar
        request.user = ar.user
        request.scopes = (ar.granted_scope or ar.scope).split()

    def _record_poll(self, ar: AuthenticationRequest, now: Any, request: Any) -> None:
        """Count the poll in the shared poll state, or with one UPDATE; raise its answer.

        CIBA §11: after ``slow_down`` the client must add 5 seconds "for this and all
        subsequent requests", so the stored interval grows with every early poll.
        """
        ar.client = request.client  # the authenticated client owns it; no query
        answer = poll_state().record_poll(ar, getattr(request, "ciba_credentials", None), now.timestamp())
        if answer is not None:
            raise SlowDownError() if answer == SLOW_DOWN else AuthorizationPendingError()
        too_fast = ar.last_polled_at is not None and now - ar.last_polled_at < timedelta(seconds=ar.interval)
        update: dict[str, Any] = {"last_polled_at": now}
        if too_fast:
            update["interval"] = F("interval") + ciba_settings.SLOW_DOWN_INCREMENT
        AuthenticationRequest.objects.filter(pk=ar.pk).update(**update)
        raise SlowDownError() if too_fast else AuthorizationPendingError()

    def consume_ciba_request(self, request: Any) -> None:
        """The race arbiter: only the caller whose conditional UPDATE matched may mint tokens."""
        if not services.mark_issued(request.ciba_request):
            raise InvalidGrantError(description="Unknown or already used auth_req_id.", request=request)

    def get_id_token_dictionary(self, token: dict, token_handler: Any, request: Any) -> tuple[dict, Any]:
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        ar = getattr(request, "ciba_request", None)
        if ar is not None:
            claims[AUTH_REQ_ID_CLAIM] = ar.auth_req_id
            if ar.decided_at is not None:
                # The user authenticated when approving on their device, not at last_login.
                claims["auth_time"] = int(ar.decided_at.timestamp())
            if ar.acr:
                claims["acr"] = ar.acr
        if "refresh_token" in token:
            # CIBA §10.3.1: required in push mode, where the ID token binds the refresh token
            # the client receives unsolicited; harmless (and useful) in poll and ping.
            claims[RT_HASH_CLAIM] = token_hash(token["refresh_token"])
        return claims, expiration_time


def token_hash(value: str) -> str:
    """``at_hash``-style hash (OIDC Core §3.3.2.11): left half of SHA-256, base64url.

    SHA-256 matches the RS256 and HS256 signatures DOT produces.
    """
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")
