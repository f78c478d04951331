"""Rendering errors: every ``ciba.errors.CibaError`` the same way, and, on the protocol
endpoints, DRF's own failures in the OAuth error shape (RFC 6749 §5.2).

A dependency that is down or hung (PostgreSQL, the cache: ``ciba.outages.is_outage``) is not
a bug: every ciba view answers it as ``TemporarilyUnavailable`` (503, ``Retry-After``, in the
view's own error format), never Django's HTML 500 page.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from ..conf import ciba_settings
from ..errors import CibaError, TemporarilyUnavailable, describe
from ..outages import is_outage

logger = logging.getLogger("ciba.outages")

UNREADABLE_BODY = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


class CibaErrorMixin:
    """Turns a ``CibaError`` into ``{"error", "error_description", ...}`` with its status and
    headers; everything else is the view's usual handling. Used by every ciba view."""

    def handle_exception(self, exc: Exception) -> Response:
        if not isinstance(exc, CibaError) and is_outage(exc):
            exc = outage(exc)
        if not isinstance(exc, CibaError):
            return super().handle_exception(exc)  # type: ignore[misc]
        response = Response(exc.as_dict(), status=exc.status_code, headers=exc.headers)
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = 'Basic realm="ciba"'
        response.exception = True
        return response


class OAuthErrorMixin(CibaErrorMixin):
    """Also DRF's own exceptions as ``{"error", "error_description"}``, for endpoints clients call.

    CIBA clients parse ``error`` (§13); DRF's default ``{"detail": ...}`` would leave them
    with nothing to act on. The conformance suite also fails an error body with members
    other than ``error``, ``error_description`` and ``error_uri``.
    """

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, exceptions.Throttled):
            # §13 has no rate-limit code: access_denied is "the OP denied the request before
            # any user interaction"; 429 and Retry-After tell when to try again (RFC 6585).
            response = Response(
                {
                    "error": "access_denied",
                    "error_description": "Too many requests from this client; retry later.",
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
            if exc.wait is not None:
                response["Retry-After"] = str(max(1, int(exc.wait)))
        elif isinstance(exc, exceptions.MethodNotAllowed):
            response = Response(
                {"error": "invalid_request", "error_description": "Use POST."},
                status=status.HTTP_405_METHOD_NOT_ALLOWED,
                headers={"Allow": "POST"},
            )
        elif isinstance(exc, exceptions.UnsupportedMediaType):
            response = Response(
                {
                    "error": "invalid_request",
                    "error_description": "The body must be application/x-www-form-urlencoded.",
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        elif isinstance(exc, UNREADABLE_BODY):
            # Django refuses to read the body (DATA_UPLOAD_MAX_*): its HTML 400 would leave a
            # client with no error code, so it is an OAuth error like any other bad request.
            response = Response(
                {
                    "error": "invalid_request",
                    "error_description": "The request body is too large or has too many fields.",
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        elif isinstance(exc, exceptions.APIException):
            response = Response(
                {"error": "invalid_request", "error_description": _plain_detail(exc)},
                status=status.HTTP_400_BAD_REQUEST,
            )
        else:
            response = super().handle_exception(exc)
        response["Cache-Control"] = "no-store"
        response.exception = True
        return response


def outage(exc: BaseException) -> TemporarilyUnavailable:
    """The error a client sees when a dependency is down (logged once here, without the
    traceback: the cause is the dependency, not this request), with ``Retry-After`` of
    ``OUTAGE_RETRY_AFTER`` seconds."""
    logger.warning("Answered 503: a dependency is unavailable (%s: %s)", type(exc).__name__, exc)
    error = TemporarilyUnavailable("The service is temporarily unavailable; retry in a moment.")
    error.headers["Retry-After"] = str(max(1, int(ciba_settings.OUTAGE_RETRY_AFTER)))
    return error


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """A site's ``handler500`` (``handler500 = "ciba.views.rendering.server_error"`` in the root
    URLconf): an outage that reached Django's last resort (a view of DOT or of the site) is a
    JSON ``503 temporarily_unavailable`` with ``Retry-After``; anything else is Django's own
    500 page. Django calls the handler while the exception is being handled."""
    exc = sys.exception()
    if exc is None or not is_outage(exc):
        return defaults.server_error(request, template_name)
    error = outage(exc)
    response = JsonResponse(error.as_dict(), status=error.status_code)
    response["Retry-After"] = error.headers["Retry-After"]
    response["Cache-Control"] = "no-store"
    return response


def _plain_detail(exc: Any) -> str:
    detail = exc.detail if isinstance(exc.detail, str) else "The request could not be read."
    return describe(str(detail).replace("\n", " ").replace('"', "'").replace("\\", "/"))


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Protocol endpoints answer ``application/json`` whatever ``Accept`` says.

    RFC 6749 §5 and CIBA §7.3 define JSON responses. Left to DRF, ``Accept: text/html`` got
    the browsable API page (with the new ``auth_req_id`` inside the HTML) and
    ``Accept: application/xml`` got the request refused. Parsers are still chosen by
    ``Content-Type``, so a non-form body is still refused.
    """

    def select_renderer(
        self, request: Any, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type  # the view's only renderer: JSON


class ProtocolEndpointMixin(OAuthErrorMixin):
    """OAuth errors and JSON answers, for DRF views clients call (not people).

    A method the view does not implement is refused before the client is authenticated: DRF
    would authenticate first, and answer a GET with ``invalid_client``.
    """

    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):  # type: ignore[attr-defined]
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
