"""RFC 7662 introspection: for designated resource servers only, and truthful about what the
resource side would accept.

**Who may ask.** RFC 7662 §4: the server "MUST require authentication of protected resources"
and "SHOULD require protected resources to be specifically authorized to call the
introspection endpoint". DOT's view lets *any* client that authenticates introspect *any*
token, so an app a user registered through DOT's self-service pages could read another user's
tokens (``username``, ``scope``). Here the caller must be an application the site designated
as a resource server (``ciba.ResourceServer``, managed in the admin; ``ciba.designations``):

* with its client credentials, checked exactly as at the token endpoint (``ciba.client_auth``:
  the method it registered, narrowed by the profile, behind the failed-authentication guard).
  None, or wrong ones: 401 ``invalid_client`` (RFC 6749 §5.2, RFC 7662 §2.3), challenged
  ``Basic`` only when the caller used Basic. Right ones of a client the site did not designate:
  403 ``unauthorized_client``. The caller is who it says it is, so a 401 would only invite it
  to authenticate again; and a ``{"active": false}`` (which §4 allows for a token the caller
  may not see) would make a mis-configured resource server refuse every user in silence, while
  telling an intruder nothing more than the 403 does, since a 403 says nothing about the token;
* or, as DOT allows, with a bearer token carrying the ``introspection`` scope, held by a
  resource server or minted by the site itself (no application). An invalid token: 401
  ``invalid_token``; a valid one without that right: 403 ``insufficient_scope`` (RFC 6750 §3.1).

**What it answers.** DOT's members (``active``, ``scope``, ``exp``, ``client_id``,
``username``, ``aud``) and the ``sub`` the token's client sees (its pairwise one, for a
pairwise client: ``ciba.subjects``), ``{"active": false}`` for every token the resource side
would refuse whatever is presented with it (DOT's validity, and since ``CibaValidator.validate_bearer_token``
refuses a deactivated user's tokens, those too), and, so that a resource server can enforce
what the server's own endpoints enforce, the token's confirmation (RFC 8705 §3.2:
``cnf`` with ``x5t#S256``; RFC 9449 §6.2: ``cnf`` with ``jkt``), its type (a DPoP-bound
token is not a bearer one), and the ``authorization_details`` the user approved for it
(RFC 9396 §9.1), so a resource server can hold a payment token to the payment approved.
DOT answers the token's resources (RFC 8707) as ``aud``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import View
from oauth2_provider.compat import login_not_required
from oauth2_provider.models import get_access_token_model
from oauth2_provider.views import IntrospectTokenView

from .. import client_auth, designations, subjects
from ..backchannel.rules import single_valued
from ..constants import DPOP_TOKEN_TYPE
from ..errors import (
    CibaError,
    InsufficientScope,
    InvalidClient,
    InvalidRequest,
    InvalidToken,
    NotAResourceServer,
)
from ..oauth.validators import may_use_tokens
from ..sender import bindings
from ..tokens import AUTHORIZATION_DETAILS, granted_details
from .rendering import UNREADABLE_BODY, json_error


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(login_not_required, name="dispatch")
class CibaIntrospectTokenView(IntrospectTokenView):
    """DOT's introspection, for designated resource servers, with ``cnf`` and ``token_type``."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method is not None and request.method.upper() != "OPTIONS":
            try:
                self.resource_server = self.authorized_caller(request)
            except CibaError as exc:
                return json_error(exc, request)
        # DOT's ClientProtectedResourceMixin.dispatch authenticated the caller; that is done.
        return View.dispatch(self, request, *args, **kwargs)

    def authorized_caller(self, request: HttpRequest) -> Any:
        """The designated application that asks (``None``: a token the site minted itself), or
        the ``CibaError`` to answer."""
        scheme = request.META.get("HTTP_AUTHORIZATION", "").split(" ", 1)[0].lower()
        if scheme in ("bearer", "dpop"):
            return self._token_holder(request)
        return self._authenticated_client(request)

    def _token_holder(self, request: HttpRequest) -> Any:
        try:
            valid, oauthlib_request = self.get_oauthlib_core().verify_request(request, scopes=[])
        except ValueError:  # DOT: a query string with invalid hex escapes
            raise InvalidRequest("The request could not be read.") from None
        if not valid:
            raise InvalidToken("The access token is invalid, expired or revoked.")
        token = oauthlib_request.access_token
        if not designations.token_may_introspect(token):
            raise InsufficientScope(
                "This token does not allow introspection.", scope=designations.INTROSPECTION_SCOPE
            )
        return token.application

    def _authenticated_client(self, request: HttpRequest) -> Any:
        try:
            params = single_valued(request.POST) if request.method == "POST" else {}
        except UNREADABLE_BODY:
            raise InvalidRequest("The request body is too large or has too many fields.") from None
        credentials = client_auth.read_credentials(request.META.get("HTTP_AUTHORIZATION", ""), params)
        if credentials is None:
            raise InvalidClient("Client authentication is required.")
        client = client_auth.verify_credentials(
            credentials, client_auth.load_client(credentials.client_id), request
        )
        if not designations.is_resource_server(client):
            raise NotAResourceServer("This client is not a resource server allowed to introspect tokens.")
        return client

    @staticmethod
    def get_token_response(token_value: str | None = None) -> HttpResponse:
        response = IntrospectTokenView.get_token_response(token_value)
        if response.status_code != 200 or token_value is None:
            return response
        data = json.loads(response.content)
        if not data.get("active"):
            return response
        checksum = hashlib.sha256(token_value.encode("utf-8")).hexdigest()
        token = (
            get_access_token_model()
            .objects.select_related("user", "application", "ciba_binding")
            .filter(token_checksum=checksum)
            .first()
        )
        if token is None or not may_use_tokens(token.user):
            return JsonResponse({"active": False})
        if token.user is not None and token.application is not None:
            # RFC 7662 §2.2 ``sub``: the one the token's client was given (OIDC Core §8), so a
            # resource server of a pairwise client's sector matches it with the ID token's.
            data["sub"] = subjects.subject_for(token.user, token.application)
        binding = bindings.loaded_with(token)
        data["token_type"] = DPOP_TOKEN_TYPE if binding is not None and binding.jkt else "Bearer"
        if binding is not None:
            data["cnf"] = binding.cnf
        details = granted_details(token)
        if details:
            data[AUTHORIZATION_DETAILS] = details
        return JsonResponse(data)
