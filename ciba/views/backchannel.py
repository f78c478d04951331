"""The backchannel authentication endpoint (CIBA §7): a client starts a CIBA request.

HTTP only: ``backchannel_hooks`` authenticates the client, refuses clients not registered for
CIBA and throttles per client; ``ciba.backchannel`` checks the parameters; ``ciba.services``
stores the request and notifies the user's device.

A form POST, the endpoint's every request, is answered by a plain Django view (``answer``):
the same checks in the same order as DRF ran them, without DRF's request wrapper, content
negotiation, parser, authentication, permission and throttle classes (issue 29: about a third
of the request's Python). Every other request (another method, ``OPTIONS``, a body that is not
a form) is answered by the DRF view, ``BackchannelAuthenticationView``, and so is every refusal
of a form POST (``ProtocolEndpointMixin``'s rendering of ``ciba.errors``, on a view instance):
the answers are the bytes DRF gave, headers included (``tests/test_backchannel_answers.py``).
``BackchannelAuthenticationView.as_view()`` returns the plain view, which carries the DRF view
class as ``cls``, as DRF's own ``as_view`` does, so drf-spectacular still describes the endpoint
from the class and its ``extend_schema``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import backchannel, constants, services
from ..client_auth import authenticate_client
from ..errors import CibaError, InvalidClient, UnknownUserId
from . import backchannel_hooks as hooks
from .backchannel_hooks import ClientAuthentication, ClientRateThrottle, IsCibaClient
from .openapi import BACKCHANNEL_REQUEST, BACKCHANNEL_RESPONSE, OAUTH_ERROR
from .rendering import ProtocolEndpointMixin

FORM = FormParser.media_type
#: Parameters Django's error reports hide: every credential a backchannel request can carry.
SENSITIVE = (
    "client_secret",
    "client_assertion",
    "client_notification_token",
    "user_code",
    "login_hint_token",
    "id_token_hint",
    "request",
)


@extend_schema(
    tags=["ciba"],
    summary="Start a CIBA request (CIBA §7); authenticate as the client",
    request={"application/x-www-form-urlencoded": BACKCHANNEL_REQUEST},
    responses={
        200: BACKCHANNEL_RESPONSE,
        400: OAUTH_ERROR,
        401: OAUTH_ERROR,
        403: OAUTH_ERROR,
        429: OAUTH_ERROR,
    },
)
@method_decorator(sensitive_post_parameters(*SENSITIVE), name="dispatch")
class BackchannelAuthenticationView(ProtocolEndpointMixin, APIView):
    """``POST /o/backchannel-authentication/`` → ``{auth_req_id, expires_in, interval}``.

    Only ``application/x-www-form-urlencoded`` bodies are parsed (§7.1); any other content
    type, a repeated parameter, or a wrong method is an OAuth ``invalid_request``, never
    DRF's ``{"detail": ...}``.
    """

    authentication_classes = [ClientAuthentication]
    permission_classes = [IsCibaClient]
    throttle_classes = [ClientRateThrottle]
    parser_classes = [FormParser]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        params = backchannel.single_valued(request.data, repeatable=backchannel.REPEATABLE)
        return Response(start(params, request.auth, request), headers=dict(CREATED_HEADERS))

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponse]:
        """The plain view for form POSTs, this DRF view for everything else (see the module)."""
        return plain_view(cls, initkwargs, super().as_view(**initkwargs))


def start(params: dict[str, str], client: Any, http_request: Any) -> dict[str, Any]:
    """Apply the §7.1 rules to an authenticated, permitted and counted request, store it, and
    return the §7.3 answer's body."""
    new = backchannel.validate(params, client=client, http_request=http_request)
    try:
        ar = services.create_request(**new.create_kwargs())
    except IntegrityError:
        gone = _gone_meanwhile(new)
        if gone is None:
            raise
        raise gone from None
    body: dict[str, Any] = {"auth_req_id": ar.auth_req_id, "expires_in": new.expires_in}
    if new.client.backchannel_token_delivery_mode in constants.TOKEN_ENDPOINT_MODES:
        body["interval"] = ar.interval  # §7.3: only for clients that may poll
    return body


def _gone_meanwhile(new: Any) -> CibaError | None:
    """Why the database refused the request's row: its client or its user was deleted after
    this request authenticated the one and resolved the other (an admin, RFC 7592's DELETE).
    Answered as if the request had come a moment later: the client is unknown
    (``invalid_client``: RFC 7592 §2.3, its credentials stop working at once) or the user is
    (``unknown_user_id``, §13). Any other refusal is a bug, and stays one."""
    client_model = type(new.client)
    if not client_model._default_manager.filter(pk=new.client.pk).exists():
        return InvalidClient("Client authentication failed.")
    user = new.user
    if not type(user)._default_manager.filter(pk=user.pk).exists():
        return UnknownUserId("The hint does not identify a user of this server.")
    return None


#: The §7.3 answer is never stored (RFC 6749 §5.1, as a token response).
CREATED_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def plain_view(
    view_class: type[APIView], initkwargs: dict[str, Any], drf_view: Callable[..., HttpResponse]
) -> Callable[..., HttpResponse]:
    """``view_class``'s answers, a form POST's without DRF's request cycle.

    Built once per ``as_view()``: the renderer and the ``Allow`` header DRF adds to every
    answer are fixed here. The returned function carries ``drf_view``'s attributes (``cls``,
    ``initkwargs``, ``view_class``, ``csrf_exempt``), so URL introspection and the OpenAPI
    schema see ``view_class``.
    """
    renderer = JSONRenderer()  # the view's only renderer; JSONOnlyNegotiation always picks it
    allow = ", ".join(view_class(**initkwargs).allowed_methods)

    @functools.wraps(drf_view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST" or request.content_type != FORM or "HTTP_CONTENT_TYPE" in request.META:
            return drf_view(request, *args, **kwargs)  # DRF reads HTTP_CONTENT_TYPE first
        try:
            # DRF's FormParser, as DRF's request gives it the body and its encoding.
            data = QueryDict(request.body, encoding=request.encoding or settings.DEFAULT_CHARSET)
            params = backchannel.single_valued(data, repeatable=backchannel.REPEATABLE)
            client = authenticate_client(request, params)
            request.user = AnonymousUser()  # what DRF set: the client is no user of the site
            hooks.check_ciba_client(client)
            hooks.throttle(client)
            body = start(params, client, request)
        except Exception as exc:
            return refusal(view_class(**initkwargs), request, exc, args, kwargs)
        response = HttpResponse(renderer.render(body), content_type=renderer.media_type)
        response["Allow"] = allow
        for name, value in CREATED_HEADERS.items():
            response[name] = value
        return response

    return csrf_exempt(sensitive_post_parameters(*SENSITIVE)(answer))


def refusal(
    view: APIView, request: HttpRequest, exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> HttpResponse:
    """``exc`` answered by the DRF view, as its ``dispatch`` answers an exception raised in it:
    ``handle_exception`` (``ProtocolEndpointMixin``: the OAuth error, its status and headers)
    and ``finalize_response``. An exception it does not answer is raised again."""
    view.args, view.kwargs = args, kwargs
    drf_request = view.initialize_request(request, *args, **kwargs)
    view.request = drf_request
    view.headers = view.default_response_headers
    view.format_kwarg = view.get_format_suffix(**kwargs)
    drf_request.accepted_renderer, drf_request.accepted_media_type = view.perform_content_negotiation(
        drf_request
    )
    return view.finalize_response(drf_request, view.handle_exception(exc), *args, **kwargs)
