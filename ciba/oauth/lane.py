"""The pending-poll fast lane: a WSGI layer that answers pending polls ahead of Django.

Its public import path is ``ciba.fast_lane`` (``from ciba.fast_lane import FastLane``); it
lives here, beside the token view whose bytes it gives and the pre-screen they both ask.

A polling client asks the token endpoint every few seconds whether its request was decided;
almost every answer is ``authorization_pending`` or ``slow_down``. With the shared poll state
(``RedisPollState``) that answer costs one Lua call in Redis, and the rest of the time went
to Django's request cycle: middleware, URL resolution, the view. ``FastLane`` wraps the
site's WSGI application (``example_project/wsgi.py``)::

    application = FastLane(get_wsgi_application())

and, for a ``POST`` to the token endpoint's path with a small form body and none of the
headers it leaves to Django (``Cookie``, ``DPoP``, a query string),
asks ``ciba.oauth.prescreen.screen`` — the token view's own pre-screen, with the client
identified by ``ciba.client_auth.poll_identity`` — and answers only ``authorization_pending``
or ``slow_down``, the answers the Redis record proves. Everything else (an unverified or
wrong secret, JWT or mTLS client authentication, a decided, expired or unknown request,
repeated parameters, Redis down or its breaker open, any other path or method) goes to
Django untouched: the body is handed back in a fresh ``wsgi.input`` and ``CONTENT_LENGTH`` is
left as it was.

The answer is the bytes the full path gives, headers included: the view's response is built
by the same function (``prescreen.oauth_error``), then the response half of the site's
``MIDDLEWARE`` runs on it — Django's own classes, instantiated here: ``SecurityMiddleware``
(``nosniff``, ``Referrer-Policy``, COOP, HSTS over HTTPS), ``CommonMiddleware``
(``Content-Length``), ``XFrameOptionsMiddleware``, ``GZipMiddleware``. Their request half runs
first, before the poll is counted: a request they would refuse (a ``Host`` outside
``ALLOWED_HOSTS``, an HTTPS redirect, a forbidden user agent) goes to Django, which refuses it.
Middleware known to change nothing in this answer when no cookie is sent (sessions, CSRF — the
token view is exempt — authentication, messages, WhiteNoise) are skipped. Any other middleware
might refuse or change the answer, so the lane stays off (and says so in the log) unless the
site lists it in ``CIBA["FAST_LANE_SKIPPABLE_MIDDLEWARE"]``. As on the full path, each answer is
logged by ``django.request`` ("Bad Request: /o/token/", a warning).

The answer those middleware give is kept and given again (``FastLane.answers``): building the
response and running their response half cost a third of the lane's own Python per poll
(docs/performance.md, issue 29). Their response half reads the request only through
``request.is_secure()`` (HSTS) and, for a body it compresses, ``Accept-Encoding`` (gzip), and
the rest from settings; so an answer is kept per error (code, description, headers) and
``is_secure()``, never when gzip touched it (``Content-Encoding`` or ``Vary`` set: a poll's
answers are under gzip's 200 bytes, so it never does), and forgotten when a setting changes
(``setting_changed``, as tests do). The first answer of each kind is built by the middleware
themselves, so the bytes are theirs.

Skipped with the middleware: Django's ``request_started``/``request_finished`` signals (they
reset and close database connections; the lane uses none) and URL resolution (the path is
the token endpoint's, reversed once). Nothing on the lane's path touches the database, so
pending polls keep their answers while PostgreSQL is down or hung; if the poll state cannot
answer (Redis down, its breaker open) or any dependency fails, Django answers.

For every request, the lane first makes a chunked body (``Transfer-Encoding: chunked``, no
``Content-Length``) readable: WSGI servers such as granian hand it to the application as a
stream without a length, and Django reads a request without ``CONTENT_LENGTH`` as empty.
The body is read here, up to ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (one byte more, so Django
refuses a larger one as it refuses any other), and handed on with its length.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.http import HttpResponse
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.log import log_response
from django.utils.module_loading import import_string

from .. import outages
from ..client_auth import poll_identity
from ..conf import ciba_settings
from ..endpoints import TOKEN_URL_NAME
from ..polling import poll_state
from . import prescreen

logger = logging.getLogger("ciba.fast_lane")  # the public name sites configure logging for

#: The largest body the lane reads: a poll is about 100 bytes (300 with client_secret_post).
MAX_BODY = 4096
#: Django's middleware whose two halves run here, on the lane's own answer.
REPLAYED = (
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
#: Middleware that neither refuses a cookie-less POST to the token endpoint nor changes its
#: answer (the token view is CSRF-exempt and touches no session, user or message).
SKIPPED = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
#: Request headers whose effect only the full path knows: a session or CSRF cookie, a DPoP
#: proof (checked before any pending answer; the answer may carry a nonce), a body in a
#: transfer coding other than chunked.
_LEFT_TO_DJANGO = ("HTTP_COOKIE", "HTTP_DPOP", "HTTP_TRANSFER_ENCODING", "QUERY_STRING")
#: The largest chunked body read when ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is None (Django's default).
MAX_CHUNKED_BODY = 2_621_440
#: Answers kept at most (two errors, HTTP or HTTPS: four in practice).
MAX_KEPT_ANSWERS = 16

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FastLane:
    """Wrap Django's WSGI application; create it after ``get_wsgi_application()`` (settings and
    the URLconf are read once, here)."""

    def __init__(self, app: WSGIApp, identify: prescreen.Identify = poll_identity) -> None:
        self.app = app
        self.identify = identify
        self.middleware: list[Any] = []
        self.path: str | None = None
        #: (error, description, error headers, is_secure) -> (status line, headers, body), as
        #: the middleware's response half made them the first time
        self.answers: dict[tuple[Any, ...], tuple[str, list[tuple[str, str]], bytes]] = {}
        setting_changed.connect(self._forget_answers)
        unknown = [
            path
            for path in settings.MIDDLEWARE
            if path not in REPLAYED + SKIPPED and path not in ciba_settings.FAST_LANE_SKIPPABLE_MIDDLEWARE
        ]
        if unknown:
            logger.warning(
                "The pending-poll fast lane is off: MIDDLEWARE has %s, which might refuse or change "
                'a token answer. List it in CIBA["FAST_LANE_SKIPPABLE_MIDDLEWARE"] if it does neither.',
                ", ".join(unknown),
            )
            return
        try:
            token = reverse(TOKEN_URL_NAME)
        except NoReverseMatch:
            logger.warning("The pending-poll fast lane is off: no URL named %s", TOKEN_URL_NAME)
            return
        self.middleware = [
            import_string(path)(_unreachable) for path in settings.MIDDLEWARE if path in REPLAYED
        ]
        self.path = "/" + token.removeprefix(get_script_prefix())  # what PATH_INFO holds
        self.max_body = min(MAX_BODY, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or MAX_BODY)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        dechunk(environ)
        if environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") == "POST":
            outages.new_request()
            try:
                answered = self._answer(environ, start_response)
            except Exception as exc:
                if not outages.is_outage(exc):
                    raise
                answered = None  # Django answers (503 if it needs the dependency too)
            finally:
                outages.end_request()
            if answered is not None:
                return answered
        return self.app(environ, start_response)

    def _answer(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes] | None:
        """The answer when the poll state proves the request pending; ``None`` (with the body
        handed back in ``wsgi.input``) when Django must answer."""
        if any(environ.get(name) for name in _LEFT_TO_DJANGO):
            return None
        if not environ.get("CONTENT_TYPE", "").startswith(prescreen.FORM) or not poll_state().shared:
            return None
        length = str(environ.get("CONTENT_LENGTH") or "")
        # A length of thousands of digits is past int()'s digit limit: Django's to refuse.
        if not length.isdigit() or len(length) > 12 or not 0 < int(length) <= self.max_body:
            return None
        body = _read(environ, int(length))
        request = WSGIRequest(environ)
        for middleware in self.middleware:
            try:
                refused = hasattr(middleware, "process_request") and middleware.process_request(request)
            except Exception:  # noqa: BLE001 - Django turns it into its answer (DisallowedHost: 400)
                return None
            if refused:
                return None
        error = prescreen.screen(environ, body, self.identify)
        if error is None or error.error not in prescreen.POLL_ANSWERS:
            return None
        key = (error.error, error.description, tuple(error.headers.items()), request.is_secure())
        answer = self.answers.get(key)
        if answer is None:
            response = prescreen.oauth_error(error)
            for middleware in reversed(self.middleware):
                response = middleware.process_response(request, response)
            status = f"{response.status_code} {response.reason_phrase}"
            answer = (status, list(response.items()), response.content)
            if not response.has_header("Content-Encoding") and not response.has_header("Vary"):
                if len(self.answers) < MAX_KEPT_ANSWERS:
                    self.answers[key] = answer
        else:  # for the log record, a response of the same status
            response = HttpResponse(status=error.status_code, reason=answer[0].partition(" ")[2])
        log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        start_response(answer[0], list(answer[1]))
        return [answer[2]]

    def _forget_answers(self, **kwargs: Any) -> None:
        """A setting changed (tests): the middleware may answer differently now."""
        self.answers.clear()


class ChunkedBodies:
    """Only the chunked-body half of ``FastLane``, for a site that serves Django without the
    lane (``ChunkedBodies(get_wsgi_application())``): chunked bodies get their length."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        dechunk(environ)
        return self.app(environ, start_response)


def dechunk(environ: dict[str, Any]) -> None:
    """Give a chunked request body its ``CONTENT_LENGTH`` (the server has decoded the chunks)."""
    coding = str(environ.get("HTTP_TRANSFER_ENCODING", "")).strip().lower()
    if coding != "chunked" or environ.get("CONTENT_LENGTH"):
        return
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or MAX_CHUNKED_BODY
    body = _read(environ, limit + 1)
    environ["CONTENT_LENGTH"] = str(len(body))
    if len(body) <= limit:  # whole: the lane may read it; longer, Django refuses it (too large)
        del environ["HTTP_TRANSFER_ENCODING"]


def _read(environ: dict[str, Any], length: int) -> bytes:
    """Read the body and put it back as ``wsgi.input``, for Django if the lane does not answer.

    Reads until ``length`` bytes or the end of the stream (a server may return less per call).
    """
    stream = environ["wsgi.input"]
    chunks, remaining = [], length
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _unreachable(request: Any) -> HttpResponse:
    raise AssertionError("the lane calls only the middleware's process_request and process_response")
