"""The client registration endpoint (RFC 7591 §3) and the client configuration endpoint
(RFC 7592 §2), JSON in and out.

HTTP only: the body is read here (JSON, bounded in size), everything else is
``ciba.client_registration.management``. Both answer 404 unless
``CIBA["REGISTRATION_ENABLED"]``, as if they were not mounted. Errors are the RFC 7591 §3.2.2
codes (``invalid_client_metadata``, ``invalid_redirect_uri``, ``invalid_software_statement``,
``unapproved_software_statement``), ``invalid_token`` (401, with the ``Bearer`` challenge)
for a missing or wrong initial access token or registration access token, and never a 500.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..client_registration import management, metadata, registration_client_uri
from ..client_registration.admission import OpenRegistrationThrottle
from ..conf import ciba_settings
from ..errors import InvalidClientMetadata, InvalidRequest
from .openapi import OAUTH_ERROR
from .rendering import UNREADABLE_BODY, ProtocolEndpointMixin

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JSON = "application/json"


def read_document(request: Request) -> Any:
    """The request's JSON document: ``application/json``, at most
    ``metadata.MAX_DOCUMENT_BYTES`` (413 beyond), parsed without DRF's parsers so that every
    malformed body is an ``invalid_client_metadata``, not DRF's ``{"detail": ...}``."""
    media_type = (request.META.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise InvalidClientMetadata(
            "Send the client metadata as a JSON object (Content-Type: application/json)."
        )
    too_large = InvalidClientMetadata(
        f"The request body is larger than {metadata.MAX_DOCUMENT_BYTES // 1024} KiB.", status_code=413
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > metadata.MAX_DOCUMENT_BYTES:
        raise too_large
    try:
        body = request._request.body
    except UNREADABLE_BODY:
        raise too_large from None
    if len(body) > metadata.MAX_DOCUMENT_BYTES:
        raise too_large
    return metadata.parse_body(body)


class _RegistrationEndpoint(ProtocolEndpointMixin, APIView):
    """What both endpoints share: off unless enabled, JSON only, no DRF authentication (the
    bearer tokens are the endpoints' own), never cached."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes: list[Any] = []
    #: What ``Allow`` says when another method is used.
    allowed = "POST"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not ciba_settings.REGISTRATION_ENABLED:
            raise Http404("Dynamic client registration is not enabled.")
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise InvalidRequest(f"Use {self.allowed}.", status_code=405, headers={"Allow": self.allowed})
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in NO_STORE.items():
            response[name] = value
        return response

    def client_uri(self, client_id: str) -> str:
        return registration_client_uri(self.request, client_id)


@extend_schema(
    tags=["registration"],
    summary="Register a client (RFC 7591); an initial access token as Bearer, or a software statement",
    request={JSON: OpenApiTypes.OBJECT},
    responses={
        201: OpenApiTypes.OBJECT,
        400: OAUTH_ERROR,
        401: OAUTH_ERROR,
        413: OAUTH_ERROR,
        429: OAUTH_ERROR,
    },
)
@method_decorator(sensitive_variables(), name="post")
class ClientRegistrationView(_RegistrationEndpoint):
    """``POST /o/register/`` → 201 with the stored metadata, ``client_id``, the secret (if
    its method needs one), ``registration_client_uri`` and ``registration_access_token``."""

    throttle_classes = [OpenRegistrationThrottle]
    http_method_names = ["post"]

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        document = read_document(request)
        outcome = management.register(request._request, document, self.client_uri)
        return Response(outcome.body, status=201)


@extend_schema(tags=["registration"], responses={200: OpenApiTypes.OBJECT, 401: OAUTH_ERROR})
@method_decorator(sensitive_variables(), name="dispatch")
class ClientConfigurationView(_RegistrationEndpoint):
    """``/o/register/<client_id>/`` with the registration access token as Bearer: ``GET``
    reads the registration, ``PUT`` replaces it, ``DELETE`` removes the client (204)."""

    http_method_names = ["get", "put", "delete"]
    allowed = "GET, PUT, DELETE"

    @extend_schema(summary="Read a client's registration (RFC 7592 section 2.1)")
    def get(self, request: Request, client_id: str) -> Response:
        managed = management.authenticate(request._request, client_id)
        return Response(management.read(managed, self.client_uri).body)

    @extend_schema(
        summary="Replace a client's registration (RFC 7592 section 2.2)",
        request={JSON: OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT, 400: OAUTH_ERROR, 401: OAUTH_ERROR},
    )
    def put(self, request: Request, client_id: str) -> Response:
        managed = management.authenticate(request._request, client_id)
        document = read_document(request)
        return Response(management.update(managed, document, self.client_uri).body)

    @extend_schema(summary="Delete a client (RFC 7592 section 2.3)", responses={204: None, 401: OAUTH_ERROR})
    def delete(self, request: Request, client_id: str) -> Response:
        managed = management.authenticate(request._request, client_id)
        management.delete(managed)
        return Response(status=204)
