"""DOT's request validator, taught the CIBA grant."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from functools import partial
from typing import Any

from django.db import router, transaction
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_id_token_model, get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError, UnauthorizedClientError

from .. import client_auth, registration_rules, services, signing, subjects
from ..claim_requests import accepted_values
from ..conf import ciba_settings
from ..constants import (
    AUTH_REQ_ID_CLAIM,
    AUTH_REQ_ID_PATTERN,
    CIBA_GRANT_TYPE,
    DPOP_TOKEN_TYPE,
    PROTOCOL_CLAIMS,
    RT_HASH_CLAIM,
)
from ..designations import is_device_app
from ..endpoints import token_endpoint_urls
from ..errors import (
    DESCRIPTIONS,
    AccessDenied,
    AuthorizationPending,
    BindingRefused,
    ExpiredToken,
    InvalidClient,
    SlowDown,
    TemporarilyUnavailable,
    TooManyFailedAuthentications,
)
from ..models import AccessTokenGrant, AuthenticationRequest
from ..models.original_authentication import OriginalAuthentication
from ..polling import SLOW_DOWN, poll_state
from ..sender import bindings
from ..statements import chain
from ..statements.select import CompiledSelect
from ..tokens import approved_details, carry_on_refresh, token_hash

logger = logging.getLogger("ciba.oauth")
State = AuthenticationRequest.State
AUTH_REQ_ID_SYNTAX = re.compile(AUTH_REQ_ID_PATTERN)
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: The grants whose tokens take the binding a CIBA-registered client's rules demand (RFC 8705
#: §3, RFC 9449): every grant such a client may list in ``grant_types``.
BOUND_GRANTS = (CIBA_GRANT_TYPE, "refresh_token", "client_credentials", "authorization_code")


def _first(queryset: Any) -> Any:
    """What ``QuerySet.first()`` would fetch: its own order, else the primary key's; one row."""
    return (queryset if queryset.ordered else queryset.order_by("pk"))[:1]


#: The ID token DOT just signed and saved for the access token being created
#: (``CibaValidator._create_access_token``): its serialized JWT and its row.
_saved_id_token: ContextVar[tuple[str, Any] | None] = ContextVar("ciba_saved_id_token", default=None)


#: DOT's access-token lookup (``OAuth2Validator._load_access_token``), with the token's binding
#: and its application's device-app designation joined, compiled once (``ciba.statements``).
_ACCESS_TOKEN = CompiledSelect(
    get_access_token_model,
    lambda tokens, checksum: _first(
        tokens.select_related("application__ciba_consent_client", "user", "ciba_binding").filter(
            token_checksum=checksum
        )
    ),
)


class CibaValidator(OAuth2Validator):
    """Set it as ``OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"]`` (``ciba.E005`` checks this)."""

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        # DOT maps grant names to its own application grant types and asserts the name is
        # known, so the CIBA grant and refresh-by-a-CIBA-client are answered here first, and
        # every grant of a client listing grant_types (RFC 7591 §2) by its OAuth name: DOT's
        # mapping would let "refresh_token" through for any client with authorization_code.
        if registration_rules.lists_grant_types(request.client):
            return request.client.allows_grant_type(grant_type)
        if grant_type == CIBA_GRANT_TYPE:
            return request.client.allows_grant_type(CIBA_GRANT_TYPE)
        if grant_type == "refresh_token" and getattr(request.client, "registers_ciba", False):
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
        if not uses_jwt and not getattr(client, "registers_ciba", False):
            return self._dot_authenticate_client(credentials, client, request, *args, **kwargs)
        try:
            client = client_auth.verify_credentials(credentials, client, request)
        except TooManyFailedAuthentications:
            raise  # answered as it is (429): not a wrong credential
        except InvalidClient:
            return False
        if not client.is_usable(request):
            return False
        request.client = client
        if credentials.method in client_auth.SECRET_METHODS:
            request.ciba_credentials = credentials  # verified: the poll state may remember them
        if request.grant_type in BOUND_GRANTS:
            request.ciba_binding = _binding(request, client)
        return True

    def _dot_authenticate_client(
        self, credentials: Any, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        """DOT's own check for other clients, under the same failure guard when a secret is
        presented (public clients authenticate by id alone and are never counted): a slow
        hash is an expensive check, a keyed one a cheap one; a verified secret is upgraded
        to the keyed hash."""
        if credentials is None or not credentials.secret:
            return super().authenticate_client(request, *args, **kwargs)
        stored = getattr(client, "client_secret", "")
        if client is not None and client_auth.recently_verified(credentials.secret, stored):
            authenticated = super().authenticate_client(request, *args, **kwargs)
            if authenticated:
                self._upgrade_secret(request, credentials)
            return authenticated
        if client is None:
            expensive = client_auth.unknown_client_is_slow()
        else:
            expensive = client_auth.is_slow(stored)
        address = client_auth.client_address(request)
        counted = client_auth.attempt(credentials.client_id, address, expensive=expensive)
        try:
            authenticated = super().authenticate_client(request, *args, **kwargs)
        except BaseException:
            counted.succeeded()  # not a failed authentication: only let the next check in
            raise
        if authenticated:
            counted.succeeded()
            self._upgrade_secret(request, credentials)
            return True
        if client is None:
            # DOT answers an unknown id without a check: pay what a known one costs, or the
            # time of a 401 tells which client ids exist.
            client_auth.pay_for_unknown_client(credentials.secret)
        retry_after = counted.failed()
        if retry_after:
            raise TooManyFailedAuthentications(retry_after=retry_after)
        return False

    def _upgrade_secret(self, request: Any, credentials: Any) -> None:
        """The secret DOT just verified, re-hashed with the keyed hash if it is due (DOT lets a
        public device-flow client in without checking its secret: nothing was verified then)."""
        if request.grant_type != DEVICE_CODE_GRANT and getattr(request, "client", None) is not None:
            client_auth.upgrade_secret(request.client, credentials.secret)

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        """DOT's rule, and the consent scope only for the site's device apps (``ciba.ConsentClient``):
        a token carrying it approves CIBA requests in its user's name, so an app a user was
        talked into authorising must not obtain it (answered ``invalid_scope``)."""
        if ciba_settings.CONSENT_SCOPE in scopes and not is_device_app(client):
            return False
        return super().validate_scopes(client_id, scopes, client, request, *args, **kwargs)

    def validate_bearer_token(self, token: str, scopes: list[str], request: Any) -> bool:
        """DOT's check; the token's user must still be active (a deactivated account's tokens
        neither approve CIBA requests nor read userinfo); and a bound token counts only with
        its certificate, or in the DPoP scheme with a proof of its key (RFC 8705 §3,
        RFC 9449 §7). Every DOT-protected view and DRF's ``OAuth2Authentication`` ask here."""
        if not super().validate_bearer_token(token, scopes, request):
            return False
        if not may_use_tokens(getattr(request, "user", None)):
            return False
        stored = bindings.loaded_with(getattr(request, "access_token", None))
        scheme = getattr(request, "ciba_token_scheme", "bearer")
        try:
            bindings.check_presentation(stored, request, token=token, scheme=scheme)
        except BindingRefused as exc:
            # A protected resource answers in its challenge (``ciba.authentication``, DOT).
            request.oauth2_error = exc.as_dict()
            return False
        return True

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        """A deactivated user's refresh tokens mint nothing more (``invalid_grant``), and a
        bound refresh token refreshes only with a binding of the same kind."""
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        stored = bindings.stored_for(refresh_token=getattr(request, "refresh_token_instance", None))
        bindings.refresh_keeps(stored, getattr(request, "ciba_binding", None))
        return may_use_tokens(getattr(request, "user", None))

    # --- sender-constrained tokens (RFC 8705 §3, RFC 9449) ---------------------------------

    def save_bearer_token(self, token: dict, request: Any, *args: Any, **kwargs: Any) -> Any:
        """DOT's save, then the binding decided at authentication recorded for the new rows
        (``_create_access_token`` and ``_create_refresh_token``), and the DPoP token type.
        A refresh token the client did not register for is withheld first (neither saved nor
        answered)."""
        withhold_unregistered_refresh_token(token, request)
        result = super().save_bearer_token(token, request, *args, **kwargs)
        if request.grant_type == "refresh_token":
            carry_on_refresh(token, request)  # RFC 9396 §7: the approved details, refreshed
        binding = getattr(request, "ciba_binding", None)
        if binding is not None and binding.is_dpop:
            token["token_type"] = DPOP_TOKEN_TYPE  # RFC 9449 §5
        return result

    def _load_access_token(self, token: str) -> Any:
        """DOT's lookup, with the token's binding in the same query (``validate_bearer_token``
        needs it for every token it accepts), and its application's device-app designation
        (``ciba.ConsentClient``), which the consent API checks for every consent-scoped token
        (``ciba.views.permissions``): one round trip instead of two."""
        checksum = hashlib.sha256(token.encode("utf-8")).hexdigest()
        return _ACCESS_TOKEN.first(checksum)

    def _create_access_token(
        self, expires: Any, request: Any, token: dict, source_refresh_token: Any = None
    ) -> Any:
        saved = getattr(request, "ciba_saved_id_token", None)
        reset = _saved_id_token.set(saved)
        try:
            if chain.collecting() is None:
                access_token = super()._create_access_token(expires, request, token, source_refresh_token)
            else:
                access_token = self._new_access_token(expires, request, token, source_refresh_token)
        finally:
            _saved_id_token.reset(reset)
        _bind(request, access_token=access_token)
        wanted = self._userinfo_claims(request, source_refresh_token)
        if chain.collecting() is not None:
            # The approved details are recorded with the row, not after (``tokens.mint``).
            details = _details(request)
            if wanted or details:
                grant = AccessTokenGrant(
                    access_token=access_token, userinfo_claims=wanted, authorization_details=details
                )
                chain.insert(grant, access_token=access_token)
        elif wanted:
            AccessTokenGrant.objects.update_or_create(
                access_token=access_token, defaults={"userinfo_claims": wanted}
            )
        return access_token

    # --- the rows DOT writes, added to the push's chain instead (``ciba.statements.chain``) ---
    #
    # Push minting collects the token rows and writes them with the request's issue in one
    # statement. DOT's methods save each row as they make it, so while a chain collects, these
    # make the very rows DOT's would (tests/test_push_token_rows.py compares them) and add
    # them to the chain, each linked to the unwritten row it names.

    def _new_access_token(self, expires: Any, request: Any, token: dict, source_refresh_token: Any) -> Any:
        """DOT's ``_create_access_token``, its row added to the chain."""
        id_token = token.get("id_token", None)
        if id_token:
            id_token = self._load_id_token(id_token)
        access_token = get_access_token_model()(
            user=request.user,
            scope=token["scope"],
            expires=expires,
            id_token=id_token,
            application=request.client,
            source_refresh_token=source_refresh_token,
            resource=getattr(request, "resource", []),  # RFC 8707
        )
        self._set_token_value(access_token, token["access_token"])
        chain.insert(access_token, id_token=id_token)
        return access_token

    def _new_refresh_token(
        self, request: Any, refresh_token_code: str, access_token: Any, previous: Any
    ) -> Any:
        """DOT's ``_create_refresh_token``, its row added to the chain."""
        refresh_token = get_refresh_token_model()(
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=previous.token_family if previous else uuid.uuid4(),
            resource=getattr(request, "resource", []),  # RFC 8707
        )
        self._set_token_value(refresh_token, refresh_token_code)
        chain.insert(refresh_token, access_token=access_token)
        return refresh_token

    def _save_id_token(self, jti: Any, request: Any, expires: Any, *args: Any, **kwargs: Any) -> Any:
        """DOT's, or while a chain collects, DOT's row added to it."""
        if chain.collecting() is None:
            return super()._save_id_token(jti, request, expires, *args, **kwargs)
        id_token = get_id_token_model()(
            user=request.user,
            scope=request.scope or " ".join(request.scopes),
            expires=expires,
            jti=jti,
            application=request.client,
        )
        chain.insert(id_token)
        return id_token

    def _load_id_token(self, token: str) -> Any:
        """DOT links a new access token to its ID token by reading the JWT it has just signed
        back: it parses it, loads the client named by its audience for the key, verifies the
        signature and loads the row by ``jti`` (two SELECTs and a signature check: a quarter
        of a push's minting CPU). For the ID token DOT itself signed for this very token
        response (``finalize_id_token``) that is the row this request saved moments before,
        and the signature, made with the same client's key, verifies; so that one is answered
        from the row in hand, and so is one ``ciba.signing`` signed for this response (for a
        client's ``id_token_signed_response_alg``), which DOT's read-back, checking it with the
        client's key, could not link. Any other token is read back as DOT reads it."""
        saved = _saved_id_token.get()
        if saved is not None and saved[0] == token:
            return saved[1]
        return super()._load_id_token(token)

    def _userinfo_claims(self, request: Any, source_refresh_token: Any) -> dict[str, Any] | None:
        """What the new access token releases at userinfo beyond its scopes (OIDC Core §5.5):
        the ``userinfo`` member of the CIBA request's claims request, limited to the claims the
        tokens may release, decided now, while the request's scopes are known; on refresh, what
        the refresh token recorded. Computed once per token request (the refresh token keeps it)."""
        if hasattr(request, "ciba_userinfo_claims"):
            return request.ciba_userinfo_claims
        ar = getattr(request, "ciba_request", None)
        if ar is not None:
            wanted = self.releasable_claims(ar, "userinfo", request) or None
        else:
            original = _original_authentication(request, source_refresh_token)
            wanted = original.userinfo_claims if original is not None else None
        request.ciba_userinfo_claims = wanted
        return wanted

    def _create_refresh_token(
        self, request: Any, refresh_token_code: str, access_token: Any, previous: Any
    ) -> Any:
        if chain.collecting() is None:
            refresh_token = super()._create_refresh_token(request, refresh_token_code, access_token, previous)
        else:
            refresh_token = self._new_refresh_token(request, refresh_token_code, access_token, previous)
        _bind(request, refresh_token=refresh_token)
        self._remember_authentication(request, refresh_token, previous)
        return refresh_token

    # --- the original authentication, kept through refresh (OIDC Core §12.2) --------------

    def _remember_authentication(self, request: Any, refresh_token: Any, previous: Any) -> None:
        """Record the authentication behind a new refresh token: the user's approval of the
        CIBA request it was issued for, or, on rotation, what the token it replaces recorded."""
        ar = getattr(request, "ciba_request", None)
        if ar is not None and ar.decided_at is not None:
            auth_time, acr, amr = ar.auth_time or ar.decided_at, ar.acr, ar.amr
        else:
            original = _original_authentication(request, previous) if previous is not None else None
            if original is None:
                return
            auth_time, acr, amr = original.auth_time, original.acr, original.amr
        original = OriginalAuthentication(
            refresh_token=refresh_token,
            auth_time=auth_time,
            acr=acr,
            amr=amr,
            userinfo_claims=self._userinfo_claims(request, previous),
        )
        if chain.collecting() is not None:
            original.authorization_details = _details(request) or None  # as ``tokens.mint`` records them
        chain.insert(original, refresh_token=refresh_token)

    def validate_user(
        self, username: str, password: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        """With RFC 9700's password-grant gate on, refuse before any password is checked.

        oauthlib checks the user's password before the grant type, so DOT's own refusal comes
        too late: a right password got ``unauthorized_client`` and a wrong one
        ``invalid_grant`` - a password oracle open even to public clients, at the cost of a
        password hash per guess. Here both get ``unauthorized_client`` and cost nothing.
        """
        if oauth2_settings.COMPLIANT_BCP_RFC9700_PASSWORD_GRANT:
            raise UnauthorizedClientError(
                description="The password grant is disabled (RFC 9700 §2.4).", request=request
            )
        return super().validate_user(username, password, client, request, *args, **kwargs)

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
        if not AUTH_REQ_ID_SYNTAX.fullmatch(auth_req_id):
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
                "auth_time",
                "acr",
                "amr",
                "auth_req_id",
                "dpop_jkt",
                # What the tokens carry beyond scope: the claims request (released here),
                # the approved details and the resources (``ciba.tokens``).
                "claims",
                "authorization_details",
                "approved_authorization_details",
                "resource",
            )
            .first()
        )
        if ar is None or ar.state == State.ISSUED:
            raise InvalidGrantError(description="Unknown or already used auth_req_id.", request=request)
        bindings.same_key_as_declared(ar, getattr(request, "ciba_binding", None))
        state = ar.effective_state(now)
        if state in (State.EXPIRED, State.CANCELLED):
            # A withdrawn request is over for the client as an expired one is: CIBA has no
            # code of its own for it, and expired_token tells the client to stop polling.
            raise ExpiredToken(request=request)
        if state == State.DENIED:
            # RFC 6749 §5.2: the token endpoint answers its errors with 400.
            raise AccessDenied(DESCRIPTIONS["access_denied"], status_code=400, request=request)
        if state == State.PENDING:
            self._record_poll(ar, now, request)
        if not may_use_tokens(ar.user):
            # Approved while active, deactivated since: nothing is issued to anyone.
            raise InvalidGrantError(description="The authorization is no longer valid.", request=request)
        request.ciba_request = ar
        request.user = ar.user
        request.scopes = (ar.granted_scope or ar.scope).split()

    def _record_poll(self, ar: AuthenticationRequest, now: Any, request: Any) -> None:
        """Count the poll in the configured poll state and raise its answer (CIBA §11)."""
        ar.client = request.client  # the authenticated client owns it; no query
        credentials = getattr(request, "ciba_credentials", None)
        fingerprint = credentials.fingerprint() if credentials is not None else None
        if poll_state().record_poll(ar, fingerprint, now) == SLOW_DOWN:
            raise SlowDown()
        raise AuthorizationPending()

    def consume_ciba_request(self, request: Any) -> None:
        """The race arbiter: only the caller whose conditional UPDATE matched may mint tokens."""
        if not services.mark_issued(request.ciba_request):
            raise InvalidGrantError(description="Unknown or already used auth_req_id.", request=request)

    # --- the user's claims (OIDC Core §5.1, §5.4), on DOT's own machinery -----------------

    @property
    def oidc_claim_scope(self) -> dict[str, str]:  # type: ignore[override]
        """DOT's claim-to-scope table (OIDC Core §5.4) with the site's (``USER_CLAIMS_CLASS``):
        DOT releases a claim only when the token's scopes include the claim's scope."""
        return {**OAuth2Validator.oidc_claim_scope, **_user_claim_scopes()}

    def get_additional_claims(self) -> dict[str, Callable[[Any], Any]]:  # type: ignore[override]
        """The user's claims from ``CIBA["USER_CLAIMS_CLASS"]``, each read when DOT releases it.
        Without a ``request`` parameter on purpose: DOT then lists their names in discovery's
        ``claims_supported`` (``get_discovery_claims``)."""
        return {name: partial(_user_claim, name) for name in _user_claim_scopes()}

    def get_claim_dict(self, request: Any) -> dict[str, Any]:
        """DOT's claim table (and the site's), with the ``sub`` the request's client sees
        (``ciba.subjects``, OIDC Core §8): a pairwise client its sector's, a public one the
        validator's own (a site's custom ``sub`` is recorded as it is issued, so hints naming
        it lead back to the user). Every ``sub`` that leaves the server is read here: ID tokens
        of poll, ping, push and refresh, userinfo. A site that sets ``sub`` in its own
        ``get_claim_dict`` after this one takes over for every client, pairwise ones too."""
        claims = super().get_claim_dict(request)
        client = getattr(request, "client", None)
        source = claims.get("sub")
        if client is None or source is None:
            return claims

        def sub(req: Any) -> Any:
            if subjects.subject_type(req.client) == subjects.PAIRWISE:
                return subjects.pairwise_subject(req.user, req.client)
            return subjects.remember_public(req.user, source(req) if callable(source) else source)

        # The shape DOT chose (a callable when the site's claims take no request) is kept.
        claims["sub"] = sub if callable(source) else sub(request)
        return claims

    def get_oidc_claims(self, token: Any, token_handler: Any, request: Any) -> dict[str, Any]:
        """DOT's claims for the granted scopes (ID token and userinfo), less those the user has
        no value for: OIDC Core §5.3.2 omits them rather than answer ``""``."""
        claims = super().get_oidc_claims(token, token_handler, request)
        return {name: value for name, value in claims.items() if not _is_empty(value)}

    def requested_claims(
        self, ar: AuthenticationRequest, member: str, request: Any, released: dict[str, Any]
    ) -> dict[str, Any]:
        """The claims ``ar``'s claims request (OIDC Core §5.5) asks for in ``member``
        (``id_token`` or ``userinfo``), beyond those its scopes already ``released``: those the
        tokens may release (``releasable_claims``) with the user's values (``claim_values``).
        DOT's claim table is built once for both."""
        sources = self.get_claim_dict(request)
        wanted = self.releasable_claims(ar, member, request, sources=sources)
        return self.claim_values(wanted, request, released, sources=sources)

    def releasable_claims(
        self, ar: AuthenticationRequest, member: str, request: Any, *, sources: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The claims of ``member`` the tokens of ``ar`` may release, with what was asked of each.

        One the server can provide, whose scope the client may be given at all (the scopes it
        may request) and the user did not decline when approving (a scope requested but not
        granted). Claims the protocol sets (``acr``, ``auth_time``...) are ciba's, never the
        site's; a claim left out is simply not released, essential or not: OIDC Core §5.5.1
        forbids an error for it."""
        wanted = (ar.claims or {}).get(member) or {}
        if not wanted:
            return {}
        claim_scopes = self.oidc_claim_scope
        available = set(
            get_scopes_backend().get_available_scopes(application=request.client, request=request)
        )
        declined = set(ar.scopes) - set((ar.granted_scope or ar.scope).split())
        sources = self.get_claim_dict(request) if sources is None else sources
        return {
            name: qualifiers
            for name, qualifiers in wanted.items()
            if name not in PROTOCOL_CLAIMS
            and name in sources
            and claim_scopes.get(name) in available
            and claim_scopes.get(name) not in declined
        }

    def claim_values(
        self,
        wanted: dict[str, Any],
        request: Any,
        released: dict[str, Any],
        *,
        sources: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The user's value of each claim in ``wanted`` not already ``released``, when there is
        one. A claim asked for with ``value`` or ``values`` is released only when the user's
        value is one of them, so a client can ask whether, say, ``email_verified`` is true
        without learning more."""
        if not wanted:
            return {}
        sources = self.get_claim_dict(request) if sources is None else sources
        values: dict[str, Any] = {}
        for name, qualifiers in wanted.items():
            if name in released or name not in sources:
                continue
            source = sources[name]
            value = source(request) if callable(source) else source
            acceptable = accepted_values(qualifiers)
            if _is_empty(value) or (acceptable is not None and value not in acceptable):
                continue
            values[name] = value
        return values

    def get_userinfo_claims(self, request: Any) -> dict[str, Any]:
        """DOT's claims for the token's scopes, and those the CIBA request's claims request
        asked userinfo to release (OIDC Core §5.5), as recorded beside the access token."""
        claims = super().get_userinfo_claims(request)
        wanted = (
            AccessTokenGrant.objects.filter(access_token=request.access_token)
            .values_list("userinfo_claims", flat=True)
            .first()
        )
        claims.update(self.claim_values(wanted or {}, request, released=claims))
        return claims

    def get_discovery_claims(self, request: Any) -> list[str]:
        """``sub`` and the user's claims (DOT's list), then the protocol's claims of our ID tokens."""
        return list(dict.fromkeys([*super().get_discovery_claims(request), *PROTOCOL_CLAIMS]))

    def finalize_id_token(self, id_token: dict, token: dict, token_handler: Any, request: Any) -> str:
        """DOT's ID token, or, for a client that registered ``id_token_signed_response_alg``,
        the same claims signed with this server's key set (``ciba.signing``: PS256, ES256 or
        RS256 with a ``kid`` its JWKS publishes). A missing key is 503 ``temporarily_unavailable``
        and, the token transaction rolling back, leaves the request to be collected later."""
        if request.grant_type in (CIBA_GRANT_TYPE, "refresh_token"):
            # Only an authentication request carries a nonce (OIDC Core §3.1.2.1), and neither
            # grant has one here: DOT would echo a ``nonce`` parameter of the token request.
            request.nonce = None
        alg = getattr(request.client, "id_token_signed_response_alg", "")
        if not alg:
            signed = super().finalize_id_token(id_token, token, token_handler, request)
            # DOT's own signature with the client's key: ``_load_id_token`` need not read it back.
            request.ciba_saved_id_token = (signed, request.id_token)
            return signed
        claims, expiration_time = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        try:
            signed = signing.sign_id_token(id_token, alg)
        except signing.SigningKeyMissing:
            logger.error(
                "No active key signs %s ID tokens (client %s): run manage.py ciba_keys.",
                alg,
                request.client_id,
            )
            # 400 and no Retry-After, as oauthlib's TemporarilyUnavailableError answered here.
            raise TemporarilyUnavailable(
                "The server cannot sign ID tokens for this client now.",
                retry_after=None,
                status_code=400,
                request=request,
            ) from None
        with transaction.atomic(using=router.db_for_write(get_id_token_model())):
            saved = self._save_id_token(id_token["jti"], request, expiration_time)
        request.access_token = saved  # as DOT does: DRF reads it
        request.id_token = saved
        # The row just saved for this very token: ``_load_id_token`` links the access token to
        # it, where DOT's read-back would check the signature with the client's key and fail.
        request.ciba_saved_id_token = (signed, saved)
        return signed

    def get_id_token_dictionary(self, token: dict, token_handler: Any, request: Any) -> tuple[dict, Any]:
        """DOT's claims, with the authentication the ID token speaks of: the approval of the
        CIBA request, or on refresh that same approval (OIDC Core §12.2: ``auth_time`` is the
        original authentication's, ``iat`` the new token's), with its ``acr`` and ``amr``."""
        # The ID token is made before the token is saved: a withheld refresh token gets no rt_hash.
        withhold_unregistered_refresh_token(token, request)
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        ar = getattr(request, "ciba_request", None)
        if ar is not None:
            claims.update(self.requested_claims(ar, "id_token", request, released=claims))
            claims[AUTH_REQ_ID_CLAIM] = ar.auth_req_id
            # When the user authenticated for this approval (the passkey assertion, the password
            # re-entry, or the sign-in of the session that tapped), not at last_login.
            _authentication_claims(claims, ar.auth_time or ar.decided_at, ar.acr, ar.amr)
        elif request.grant_type == "refresh_token":
            original = _original_authentication(request, getattr(request, "refresh_token_instance", None))
            if original is not None:
                _authentication_claims(claims, original.auth_time, original.acr, original.amr)
        if "refresh_token" in token:
            # CIBA §10.3.1: required in push mode, where the ID token binds the refresh token
            # the client receives unsolicited; harmless (and useful) in poll and ping.
            claims[RT_HASH_CLAIM] = token_hash(token["refresh_token"])
        return claims, expiration_time


def withhold_unregistered_refresh_token(token: dict, request: Any) -> None:
    """Take the refresh token out of ``token`` unless the client may have one.

    oauthlib's grants decide refresh tokens per server, not per client (the authorization
    code grant's ``refresh_token`` attribute, ``BearerToken.create_token``): a client listing
    ``grant_types`` without ``refresh_token`` (RFC 7591 §2) must get none, so it is removed
    here, before the ID token hashes it (``rt_hash``) and before DOT saves it. Rows listing no
    ``grant_types`` are left as they were (``issues_refresh_tokens``)."""
    client = getattr(request, "client", None)
    if "refresh_token" in token and client is not None and not getattr(client, "issues_refresh_tokens", True):
        del token["refresh_token"]


def _binding(request: Any, client: Any) -> bindings.Binding | None:
    """The binding of the tokens this CIBA or refresh request will receive (``BindingRefused``
    when the client did not meet its binding rule)."""
    return bindings.for_token_request(request, client, token_endpoint_urls(request))


def may_use_tokens(user: Any) -> bool:
    """Tokens exist only for users who may still sign in (no user: a client's own token)."""
    return user is None or bool(getattr(user, "is_active", True))


def _user_claim_scopes() -> dict[str, str]:
    """The site's claims and their scopes; a name the protocol uses (``aud``, ``auth_time``...)
    is never the user's, or a site's mapping could overwrite what the ID token asserts."""
    scopes = ciba_settings.USER_CLAIMS_CLASS.claim_scopes
    return {name: scope for name, scope in scopes.items() if name not in PROTOCOL_CLAIMS}


def _user_claim(name: str, request: Any) -> Any:
    """One claim of the request's user; the site's ``claims(user)`` runs once per request."""
    values = getattr(request, "ciba_user_claims", None)
    if values is None:
        values = ciba_settings.USER_CLAIMS_CLASS().claims(request.user)
        request.ciba_user_claims = values
    return values.get(name)


def _is_empty(value: Any) -> bool:
    """A claim without a value (``email_verified: false`` has one)."""
    return value is None or (isinstance(value, (str, list, tuple, dict)) and not value)


def _authentication_claims(claims: dict[str, Any], auth_time: Any, acr: str, amr: str) -> None:
    if auth_time is not None:
        claims["auth_time"] = int(auth_time.timestamp())
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = amr.split()


def _bind(request: Any, **token_row: Any) -> None:
    """Record the binding decided at authentication (``request.ciba_binding``, if any) for the
    new ``access_token`` or ``refresh_token`` row: saved now, or added to the chain collecting
    the push's rows, linked to that row."""
    binding = getattr(request, "ciba_binding", None)
    if binding is None:
        return
    if chain.collecting() is None:
        bindings.save(binding, **token_row)
    else:
        chain.insert(bindings.row(binding, **token_row), **token_row)


def _details(request: Any) -> list[dict[str, Any]]:
    """The approved ``authorization_details`` of the CIBA request being minted, if any."""
    ar = getattr(request, "ciba_request", None)
    return approved_details(ar) if ar is not None else []


def _original_authentication(request: Any, refresh_token: Any) -> OriginalAuthentication | None:
    """What ``refresh_token`` recorded of the user's authentication, read once per request."""
    if refresh_token is None:
        return None
    cached = getattr(request, "ciba_original_authentication", None)
    if cached is not None and cached[0] == refresh_token.pk:
        return cached[1]
    original = OriginalAuthentication.objects.filter(refresh_token=refresh_token).first()
    request.ciba_original_authentication = (refresh_token.pk, original)
    return original
