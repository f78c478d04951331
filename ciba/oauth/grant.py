"""The CIBA grant (``urn:openid:params:grant-type:ciba``) on oauthlib's token endpoint."""

from __future__ import annotations

import json
from typing import Any

from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.grant_types.base import GrantTypeBase
from oauthlib.openid.connect.core.grant_types.base import GrantTypeBase as OpenIDGrantTypeBase

from ..constants import CIBA_GRANT_TYPE
from ..tokens import mint, resources_for


class CibaGrant(GrantTypeBase):
    """CIBA §10.1: exchange an approved ``auth_req_id`` for tokens, once.

    Validation (client authentication, ownership, pending/slow_down/denied/expired) happens
    first; then, in one transaction, the request is consumed with a conditional UPDATE and
    the tokens are minted and saved, so concurrent polls cannot both succeed and a loser
    leaves no token rows behind.
    """

    refresh_token = True

    def create_token_response(self, request: Any, token_handler: Any) -> tuple[dict, str, int]:
        headers = self._get_default_headers()
        try:
            self.validate_token_request(request)
        except errors.OAuth2Error as exc:
            headers.update(exc.headers)
            return headers, exc.json, exc.status_code
        with self.request_validator.ciba_token_transaction():
            try:
                self.request_validator.consume_ciba_request(request)
            except errors.OAuth2Error as exc:
                headers.update(exc.headers)
                return headers, exc.json, exc.status_code
            token = mint(request, token_handler, self._token_modifiers, self.request_validator)
        return headers, json.dumps(token), 200

    def validate_token_request(self, request: Any) -> None:
        for validator in self.custom_validators.pre_token:
            validator(request)
        if request.grant_type != CIBA_GRANT_TYPE:
            raise errors.UnsupportedGrantTypeError(request=request)
        for param in ("grant_type", "auth_req_id"):
            if param in request.duplicate_params:
                raise errors.InvalidRequestError(description=f"Duplicate {param} parameter.", request=request)
        # oauthlib's Request only pre-declares the parameters it knows.
        request.auth_req_id = request._params.get("auth_req_id")
        if not request.auth_req_id:
            raise errors.InvalidRequestError(description="Missing auth_req_id parameter.", request=request)
        # CIBA clients are confidential; this also copies client_id onto the request, which
        # HTTP Basic leaves unset and the ID token's "aud" needs.
        self.validate_client_confidential(request)
        self.validate_grant_type(request)
        self.request_validator.validate_ciba_auth_req_id(request.client_id, request.auth_req_id, request)
        # RFC 8707: checked before the request is consumed, so a wrong resource costs the client
        # nothing but this answer; DOT's save stores the list on the tokens.
        request.resource = resources_for(request.ciba_request, _resource_values(request))
        for validator in self.custom_validators.post_token:
            validator(request)


def _resource_values(request: Any) -> list[str]:
    """Every ``resource`` parameter of the token request (RFC 8707 §2 allows repeating it;
    oauthlib's parameters keep only the last)."""
    values = [value for key, value in (request.decoded_body or []) if key == "resource"]
    if not values and request._params.get("resource"):
        values = [request._params["resource"]]
    return [value for value in values if value]


class OpenIDCibaGrant(OpenIDGrantTypeBase):
    """Adds the ID token the way oauthlib's OpenID refresh-token proxy does."""

    def __init__(self, request_validator: Any = None, **kwargs: Any) -> None:
        self.proxy_target = CibaGrant(request_validator=request_validator, **kwargs)
        self.register_token_modifier(self.add_id_token)
