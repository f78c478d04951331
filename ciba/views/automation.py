"""Automated approval for conformance runs: the OpenID conformance suite's
``automated_ciba_approval_url`` hook, so its CIBA plans run without a person at the phone.

The suite POSTs, with no body and no credentials, to the URL it was configured with after
substituting ``{auth_req_id}`` and ``{action}`` (``allow`` or ``deny``); any 2xx is success.
This view is that URL: ``POST /o/ciba/automated-approval/<secret>/?auth_req_id=…&action=…``.

It decides *any* pending request as its user, so it exists only when
``CIBA["AUTOMATED_APPROVAL_SECRET"]`` is set (404 otherwise, and for a wrong secret, compared
in constant time), and ``check --deploy`` reports it as an error (``ciba.E017``). Never set
it on a server real users rely on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.http import Http404
from django.utils.crypto import constant_time_compare
from django.views.decorators.debug import sensitive_variables
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import assurance, services
from ..conf import ciba_settings
from ..constants import AUTH_REQ_ID_PATTERN
from ..errors import InvalidRequest, RequestNotPending
from ..models import AuthenticationRequest
from .rendering import CibaErrorMixin

logger = logging.getLogger("ciba.automation")

#: The suite's words, and what they mean here.
ACTIONS = ("allow", "deny")


class AutomatedApprovalView(CibaErrorMixin, APIView):
    """Approve (``allow``) or deny (``deny``) a pending request as its own user.

    An approval achieves what the client asked for, within what this server supports: the
    first of the request's ``acr_values`` this server supports
    (``assurance.acr_values_supported``), else what a plain tap achieves; it claims no ``amr``.
    """

    schema = None  # the conformance suite's hook, not an API of the site

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes: list[Any] = []  # the body, if any, is never read
    renderer_classes = [JSONRenderer]

    @sensitive_variables("secret")
    def post(self, request: Request, secret: str) -> Response:
        configured = ciba_settings.AUTOMATED_APPROVAL_SECRET
        if not configured or not constant_time_compare(secret, configured):
            raise Http404
        # The suite sends no body: both come in the URL it was configured with.
        auth_req_id = request.query_params.get("auth_req_id", "")
        action = request.query_params.get("action", "")
        if action not in ACTIONS:
            raise InvalidRequest("action must be allow or deny.")
        if not re.fullmatch(AUTH_REQ_ID_PATTERN, auth_req_id):
            raise Http404  # never issued here (and a NUL would not even reach PostgreSQL)
        ar = (
            AuthenticationRequest.objects.select_related("client", "user")
            .filter(auth_req_id=auth_req_id)
            .first()
        )
        if ar is None:
            raise Http404
        if (state := ar.effective_state()) != AuthenticationRequest.State.PENDING:
            raise RequestNotPending(state)
        logger.warning("Automated approval: %s for CIBA request …%s", action, ar.auth_req_id[-4:])
        if action == "allow":
            services.approve(ar, user=ar.user, acr=_achieved_acr(ar))
        else:
            services.deny(ar, user=ar.user)
        return Response({"state": ar.state})


def _achieved_acr(ar: AuthenticationRequest) -> str:
    supported = assurance.acr_values_supported()
    asked = [v for v in ar.acr_values.split() if v in supported]
    return asked[0] if asked else assurance.acr_for(assurance.SESSION)
