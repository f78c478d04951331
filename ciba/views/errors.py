"""Rendering every failure of a protocol endpoint in the OAuth error shape (RFC 6749 §5.2)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from ..errors import CibaError


class OAuthErrorMixin:
    """Turns ``CibaError`` and DRF's own exceptions into ``{"error", "error_description"}``.

    CIBA clients parse ``error`` (§13); DRF's default ``{"detail": ...}`` would leave them
    with nothing to act on. The conformance suite also fails an error body with members
    other than ``error``, ``error_description`` and ``error_uri``.
    """

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, CibaError):
            response = Response(exc.as_dict(), status=exc.status_code)
            if exc.status_code == status.HTTP_401_UNAUTHORIZED:
                response["WWW-Authenticate"] = 'Basic realm="ciba"'
        elif isinstance(exc, exceptions.Throttled):
            response = Response(
                {"error": "slow_down", "error_description": "Too many requests; retry later."},
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
        elif isinstance(exc, exceptions.APIException):
            response = Response(
                {"error": "invalid_request", "error_description": _plain_detail(exc)},
                status=status.HTTP_400_BAD_REQUEST,
            )
        else:
            return super().handle_exception(exc)  # type: ignore[misc]
        response["Cache-Control"] = "no-store"
        response.exception = True
        return response


def _plain_detail(exc: Any) -> str:
    detail = exc.detail if isinstance(exc.detail, str) else "The request could not be read."
    return str(detail).replace("\n", " ").replace('"', "'").replace("\\", "/")


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
    """OAuth errors and JSON answers, for DRF views clients call (not people)."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnlyNegotiation
