"""Rendering errors: every ``ciba.errors.CibaError`` the same way, and, on the protocol
endpoints, DRF's own failures in the OAuth error shape (RFC 6749 §5.2).

A dependency that is down or hung (PostgreSQL, the cache: ``ciba.outages.is_outage``) is not
a bug: every ciba view answers it as ``TemporarilyUnavailable`` (503, ``Retry-After``, in the
view's own error format), never Django's HTML 500 page.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from ..client_auth.credentials import challenge as client_challenge
from ..errors import AccessDenied, CibaError, InvalidRequest, describe, outage
from ..outages import is_outage

UNREADABLE_BODY = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


class CibaErrorMixin:
    """Turns a ``CibaError`` into ``{"error", "error_description", ...}`` with its status and
    headers; everything else is the view's usual handling. Used by every ciba view."""

    def handle_exception(self, exc: Exception) -> Response:
        if not isinstance(exc, CibaError) and is_outage(exc):
            exc = outage(exc)
        if not isinstance(exc, CibaError):
            return super().handle_exception(exc)  # type: ignore[misc]
        response = Response(
            exc.as_dict(), status=exc.status_code, headers=_headers(exc, getattr(self, "request", None))
        )
        response.exception = True
        return response


class OAuthErrorMixin(CibaErrorMixin):
    """Also DRF's own exceptions as ``{"error", "error_description"}``, for endpoints clients call.

    CIBA clients parse ``error`` (§13); DRF's default ``{"detail": ...}`` would leave them
    with nothing to act on. The conformance suite also fails an error body with members
    other than ``error``, ``error_description`` and ``error_uri``.
    """

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(_as_protocol_error(exc))
        response["Cache-Control"] = "no-store"
        response.exception = True
        return response


def _as_protocol_error(exc: Exception) -> Exception:
    """DRF's own failures (and a body Django refuses to read) as the protocol errors a client
    can act on; anything else unchanged."""
    if isinstance(exc, exceptions.Throttled):
        # §13 has no rate-limit code: access_denied is "the OP denied the request before
        # any user interaction"; 429 and Retry-After tell when to try again (RFC 6585).
        wait = {} if exc.wait is None else {"Retry-After": str(max(1, int(exc.wait)))}
        return AccessDenied("Too many requests from this client; retry later.", status_code=429, headers=wait)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return InvalidRequest("Use POST.", status_code=405, headers={"Allow": "POST"})
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return InvalidRequest("The body must be application/x-www-form-urlencoded.")
    if isinstance(exc, UNREADABLE_BODY):
        # Django refuses to read the body (DATA_UPLOAD_MAX_*): its HTML 400 would leave a
        # client with no error code, so it is an OAuth error like any other bad request.
        return InvalidRequest("The request body is too large or has too many fields.")
    if isinstance(exc, exceptions.APIException):
        return InvalidRequest(_plain_detail(exc))
    return exc


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """A site's ``handler500`` (``handler500 = "ciba.views.rendering.server_error"`` in the root
    URLconf): an outage that reached Django's last resort (a view of DOT or of the site) is a
    JSON ``503 temporarily_unavailable`` with ``Retry-After``; anything else is Django's own
    500 page. Django calls the handler while the exception is being handled."""
    exc = sys.exception()
    if exc is None or not is_outage(exc):
        return defaults.server_error(request, template_name)
    return json_error(outage(exc))


def json_error(exc: CibaError, request: Any = None) -> JsonResponse:
    """A ``CibaError`` answered outside DRF (introspection, userinfo, ``server_error``): its
    body, status and headers, never stored. ``request`` is the request answered, whose
    ``Authorization`` scheme decides the challenge of a 401 that names none."""
    response = JsonResponse(exc.as_dict(), status=exc.status_code)
    for name, value in _headers(exc, request).items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


def _headers(exc: CibaError, request: Any) -> dict[str, str]:
    """The error's headers, and for a 401 that names no challenge of its own (a failed client
    authentication: ``invalid_client``) the one RFC 6749 §5.2 calls for: the ``Basic`` challenge
    when the client authenticated in the ``Authorization`` header, none otherwise
    (``ciba.client_auth.credentials.challenge``)."""
    headers = dict(exc.headers)
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in headers:
        meta = getattr(request, "META", None) or {}
        challenge = client_challenge(meta.get("HTTP_AUTHORIZATION"))
        if challenge:
            headers["WWW-Authenticate"] = challenge
    return headers


def _plain_detail(exc: Any) -> str:
    detail = exc.detail if isinstance(exc.detail, str) else "The request could not be read."
    return describe(str(detail))


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
