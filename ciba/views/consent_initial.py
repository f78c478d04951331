"""The consent API's first steps for a bearer-token request, without DRF's generic ones.

What the device app sends (issue 29: the approve request precedes every ping and push
callback) is a request with ``Authorization: Bearer <token>`` and ``Accept`` absent, ``*/*`` or
``application/json``. For it DRF's ``APIView.initial`` negotiates content against every
renderer, asks each authentication class in turn, and DOT's ``OAuth2Authentication`` builds
a new oauthlib server and validator for every request (``get_oauthlib_core``). ``initial``
here does the same steps in the same order with what is known beforehand:

- the renderer is the view's first one, a JSON renderer, with ``application/json``, which is
  what DRF's ``DefaultContentNegotiation`` picks for those ``Accept`` values with no format
  suffix or ``format`` parameter;
- the token is verified by DOT's ``OAuthLibCore.verify_request``, as ``OAuth2Authentication``
  does, on a server kept per process as DOT's own views keep theirs
  (``OAuthLibMixin.get_oauthlib_core``; rebuilt for every request when
  ``ALWAYS_RELOAD_OAUTHLIB_CORE`` is set): oauthlib's resource endpoint makes a new oauthlib
  request per call and its token handlers and the validator keep no state of a request,
  so one server serves every request and thread;
- versioning, permissions and throttles are DRF's own calls.

Whatever else (another scheme, a token refused, an unusual ``Accept``) is ``False``: the
view then runs DRF's ``initial`` from the start, which asks the same questions again and
answers every refusal as before (the session, ``WWW-Authenticate``, ``Vary``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.core.signals import setting_changed
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.settings import oauth2_settings
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import wrap_attributeerrors

#: ``Accept`` values for which DRF's negotiation picks the first renderer, if it is JSON.
JSON_ACCEPTS = frozenset({None, "*/*", "application/json"})

_core: list[Any] = []


def initial(view: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
    """DRF's ``initial`` for a bearer-token request whose token DOT accepts; ``False`` (nothing
    decided) for any other request, which DRF's ``initial`` then handles from the start."""
    meta = request.META
    scheme, _, token = (meta.get("HTTP_AUTHORIZATION") or "").partition(" ")
    if scheme != "Bearer" or not token or " " in token or meta.get("HTTP_ACCEPT") not in JSON_ACCEPTS:
        return False
    format_kwarg = view.get_format_suffix(**kwargs)
    if format_kwarg is not None or meta.get("QUERY_STRING"):
        return False  # a format suffix or parameter (and DOT's refusal of a token in the query)
    renderers = view.get_renderers()
    authenticators = request.authenticators
    if not (
        renderers
        and isinstance(renderers[0], JSONRenderer)
        and renderers[0].media_type == "application/json"
        and authenticators
        and type(authenticators[0]) is OAuth2Authentication
    ):
        return False
    view.format_kwarg = format_kwarg
    request.accepted_renderer, request.accepted_media_type = renderers[0], "application/json"
    request.version, request.versioning_scheme = view.determine_version(request, *args, **kwargs)
    with wrap_attributeerrors():  # as DRF's Request.user
        try:
            valid, oauth_request = oauthlib_core().verify_request(request, scopes=[])
        except exceptions.APIException:
            request._not_authenticated()  # as DRF's Request._authenticate: an unreadable body
            raise
        except ValueError as error:
            if str(error) == "Invalid hex encoding in query string.":  # as OAuth2Authentication
                raise SuspiciousOperation(error) from error
            raise
    if not valid:
        return False
    request._authenticator = authenticators[0]
    request.user, request.auth = oauth_request.user, oauth_request.access_token
    view.check_permissions(request)
    view.check_throttles(request)
    return True


def oauthlib_core() -> Any:
    """DOT's ``OAuthLibCore``, one per process unless ``ALWAYS_RELOAD_OAUTHLIB_CORE`` (as
    ``OAuthLibMixin.get_oauthlib_core``); rebuilt when ``OAUTH2_PROVIDER`` changes."""
    if oauth2_settings.ALWAYS_RELOAD_OAUTHLIB_CORE:
        return get_oauthlib_core()
    if not _core:
        _core.append(get_oauthlib_core())
    return _core[0]


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "OAUTH2_PROVIDER":
        _core.clear()


setting_changed.connect(_forget)
