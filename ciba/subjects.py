"""Subject identifiers: the `sub` each client sees for a user, public or pairwise (OIDC Core section 8).

A *public* client sees the configured OAuth validator's ``sub`` (DOT's is the user's primary
key; a site that overrides it keeps its own). A *pairwise* client sees a ``sub`` of its
*sector* (OIDC Core §8.1), so that two clients of different sectors cannot join what they know
of one user by ``sub``, while the clients of one sector (one ``sector_identifier_uri``) can.

**The sector** of a client (``sector``), in this order:

1. the host of its ``sector_identifier_uri``, verified at registration
   (``verify_sector_identifier``);
2. the host of its redirect URIs, when they all have one host (OIDC Core §8.1; with several
   hosts a pairwise client must register a ``sector_identifier_uri``,
   ``registration_rules`` refuses it otherwise);
3. a CIBA client has no redirect URIs: CIBA §4 names its sector by the host of its ``jwks_uri``
   in the poll and ping modes and of its ``backchannel_client_notification_endpoint`` in the
   push mode; a client without that URL takes the host of the other;
4. none of these (a poll client with inline keys): the client alone, ``client:<client_id>``.
   No other client shares it, so its subs join with nobody's.

A client whose URLs change host changes sector, and so the subs it sees for users not yet
seen: register a ``sector_identifier_uri`` to keep them.

**The pairwise sub** is base64url(HMAC-SHA-256(salt, sector NUL local id)), the construction
of OIDC Core §8.1 with a keyed hash: the salt is ``CIBA["PAIRWISE_SUBJECT_SALT"]``, or derived
from ``SECRET_KEY`` when that is empty. The first time a sub is issued it is stored
(``ciba.models.SubjectIdentifier``, one row per (sector, user)), and from then on the stored
value is the answer: a hint's ``sub`` leads back to its user by one lookup, and a later change
of salt or ``SECRET_KEY`` changes no sub a client already holds.

**A site's own public sub** (a validator that sets ``sub`` itself) is stored too when it is
issued and is not the primary key, under the marker sector ``PUBLIC_SECTOR``, so hints naming
it resolve without the site writing a reverse lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router, transaction
from django.utils.crypto import salted_hmac
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request as OAuthlibRequest

from . import registration_rules
from .conf import ciba_settings
from .errors import InvalidClientMetadata
from .models import SubjectIdentifier
from .outbound import OutboundError, get_json

logger = logging.getLogger("ciba.subjects")

PUBLIC = "public"
PAIRWISE = "pairwise"
#: The ``sector`` of the rows that record a site's own public subs: no host is spelt so.
PUBLIC_SECTOR = "(public)"
#: Prefix of the sector of a client with no URL to take a host from (see the module docstring).
CLIENT_SECTOR_PREFIX = "client:"
#: The largest sector identifier document read (a JSON array of a client group's URLs).
SECTOR_DOCUMENT_MAX_BYTES = 64 * 1024
#: The longest ``sub`` looked up (the column's length).
MAX_SUB_LENGTH = 255
_KEY_SALT = "ciba.subjects.pairwise"


# --- which sub a client sees -------------------------------------------------------------


def subject_type(client: Any) -> str:
    """``public`` or ``pairwise``: the client's ``subject_type``, else ``DEFAULT_SUBJECT_TYPE``.

    A stored pairwise client stays pairwise even if the site later drops ``pairwise`` from
    ``SUBJECT_TYPES_SUPPORTED``: that setting limits what may be registered, and turning a
    client's subs public would hand it the very identifiers it was promised it would not get."""
    chosen = getattr(client, "subject_type", "") or ciba_settings.DEFAULT_SUBJECT_TYPE
    return PAIRWISE if chosen == PAIRWISE else PUBLIC


def sector(client: Any) -> str:
    """The sector identifier of ``client`` (see the module docstring for the order)."""
    uri = getattr(client, "sector_identifier_uri", "") or ""
    if uri:
        host = registration_rules.url_host(uri)
        if host:
            return host
    redirect_hosts = registration_rules.redirect_hosts(client)
    if len(redirect_hosts) == 1:
        return redirect_hosts[0]
    if not redirect_hosts:
        notification = getattr(client, "backchannel_client_notification_endpoint", "") or ""
        keys = getattr(client, "jwks_uri", "") or ""
        # CIBA §4: the push mode's sector is where tokens are pushed, poll and ping's where
        # the client's keys are; each falls back on the other.
        pushes = getattr(client, "backchannel_token_delivery_mode", "") == "push"
        for url in (notification, keys) if pushes else (keys, notification):
            host = registration_rules.url_host(url)
            if host:
                return host
    return f"{CLIENT_SECTOR_PREFIX}{client.client_id}"


def subject_for(user: Any, client: Any, *, issue: bool = True) -> str:
    """The ``sub`` ``client`` sees for ``user``: the pairwise one of its sector (stored when
    first issued; with ``issue=False``, for a comparison, computed without storing it), or the
    configured OAuth validator's (DOT's ``str(user.pk)`` unless the site derives its own)."""
    if subject_type(client) == PAIRWISE:
        return pairwise_subject(user, client, issue=issue)
    return public_subject(user, client)


def public_subject(user: Any, client: Any = None) -> str:
    """The configured OAuth validator's ``sub`` for ``user`` (what every public client sees)."""
    request = OAuthlibRequest("")
    request.user = user
    request.client = client
    request.scopes = []  # a site's request-aware claims may read them: none were granted here
    validator = oauth2_settings.OAUTH2_VALIDATOR_CLASS()
    sub = validator.get_claim_dict(request)["sub"]
    return str(sub(request) if callable(sub) else sub)


def pairwise_subject(user: Any, client: Any, *, issue: bool = True) -> str:
    """The pairwise ``sub`` of ``user`` in ``client``'s sector: the one stored, or a new one
    stored now (``issue=False``: only computed). Concurrent first issues agree: the value is
    derived, and the (sector, user) constraint keeps one row (``get_or_create`` reads the
    winner's)."""
    where = sector(client)
    stored = SubjectIdentifier.objects.filter(sector=where, user=user).values_list("sub", flat=True).first()
    if stored is not None:
        return stored
    if not issue:
        return derive_pairwise(where, user.pk)
    row, _ = SubjectIdentifier.objects.get_or_create(
        sector=where, user=user, defaults={"sub": derive_pairwise(where, user.pk)}
    )
    return row.sub


def derive_pairwise(sector_identifier: str, local_id: Any) -> str:
    """base64url(HMAC-SHA-256(salt, sector NUL local id)): 43 characters, not reversible, and
    different per sector. The NUL keeps ("a.b", "1") and ("a.b1", "") apart."""
    message = f"{sector_identifier}\x00{local_id}".encode()
    digest = hmac.new(_salt(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _salt() -> bytes:
    configured = ciba_settings.PAIRWISE_SUBJECT_SALT
    if configured:
        return str(configured).encode()
    return salted_hmac(_KEY_SALT, "salt", algorithm="sha256").digest()


def remember_public(user: Any, sub: Any) -> Any:
    """Record a site's own public ``sub`` for ``user`` as it is issued (not DOT's primary key,
    which needs no record), so that hints naming it resolve; returns ``sub`` unchanged.

    Best effort: a failure to record never stops the token or userinfo answer that carries the
    sub. A sub the site now gives another user moves to that user."""
    if user is None or not isinstance(sub, str) or not sub or sub == str(user.pk):
        return sub
    if len(sub) > MAX_SUB_LENGTH or "\x00" in sub:
        return sub
    rows = SubjectIdentifier.objects
    if rows.filter(sector=PUBLIC_SECTOR, user=user, sub=sub).exists():
        return sub
    try:
        with transaction.atomic(using=router.db_for_write(SubjectIdentifier)):
            rows.filter(sector=PUBLIC_SECTOR, sub=sub).exclude(user=user).delete()
            rows.update_or_create(sector=PUBLIC_SECTOR, user=user, defaults={"sub": sub})
    except IntegrityError:  # a concurrent issue recorded the same sub: it is recorded
        logger.info("Public sub of user %s recorded concurrently.", user.pk)
    return sub


# --- from a sub back to the user (hints) ------------------------------------------------------


def user_for_subject(sub: Any, client: Any, *, allow_primary_key: bool = True) -> Any | None:
    """The active user ``client`` knows as ``sub``, or ``None``.

    Pairwise: the stored identifier of ``client``'s sector, nothing else (a sub of another
    sector, or a public one, names nobody here). Public: a site's own sub recorded when
    issued, else, with ``allow_primary_key``, the user whose primary key it is, if that is
    indeed the sub the validator gives them. A client signing its own ``login_hint_token``
    passes ``allow_primary_key=False``: primary keys are guessable, and it would otherwise
    reach every account by counting."""
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB_LENGTH or "\x00" in sub:
        return None
    if subject_type(client) == PAIRWISE:
        return _stored_user(sector(client), sub)
    user = _stored_user(PUBLIC_SECTOR, sub)
    if user is not None or not allow_primary_key:
        return user
    User = get_user_model()
    try:
        user = User._default_manager.filter(pk=sub, is_active=True).first()
    except (ValueError, TypeError, ValidationError):  # not a primary key at all
        return None
    if user is None or public_subject(user, client) != sub:
        return None
    return user


def _stored_user(sector_identifier: str, sub: str) -> Any | None:
    row = (
        SubjectIdentifier.objects.select_related("user")
        .filter(sector=sector_identifier, sub=sub, user__is_active=True)
        .first()
    )
    return row.user if row is not None else None


# --- the sector identifier document (OpenID Connect Registration §5) ----------------------


def verify_sector_identifier(
    uri: str, client_urls: Iterable[str], *, redirect_uris: Iterable[str] = ()
) -> list[str]:
    """Fetch ``uri`` and check it vouches for the client; return the URLs it lists.

    The document is fetched as ``jwks_uri`` is (``ciba.outbound``: https, public hosts, no
    redirects, ``JWKS_FETCH_TIMEOUT`` for the whole call, at most
    ``SECTOR_DOCUMENT_MAX_BYTES``). It must be a JSON array of URLs that lists each of
    ``redirect_uris`` (OpenID Connect Registration §5) and the host of each of
    ``client_urls`` (CIBA §4: a CIBA client's ``jwks_uri`` and notification endpoint). Any
    failure is ``InvalidClientMetadata`` saying what to fix (RFC 7591 §3.2.2)."""
    try:
        document = get_json(
            uri, max_bytes=SECTOR_DOCUMENT_MAX_BYTES, total_timeout=ciba_settings.JWKS_FETCH_TIMEOUT
        )
    except OutboundError as exc:
        raise InvalidClientMetadata(f"sector_identifier_uri: {_fetch_problem(str(exc), uri)}") from None
    if not isinstance(document, list) or not document:
        raise InvalidClientMetadata(
            "sector_identifier_uri: the document must be a non-empty JSON array of URLs."
        )
    listed: list[str] = []
    for item in document:
        if not isinstance(item, str) or not registration_rules.url_host(item):
            raise InvalidClientMetadata(
                "sector_identifier_uri: every entry of the document must be an absolute URL with a host."
            )
        listed.append(item)
    missing = [url for url in redirect_uris if url not in listed]
    if missing:
        raise InvalidClientMetadata(
            "sector_identifier_uri: the document does not list every redirect URI of the client "
            "(OpenID Connect Registration 5)."
        )
    hosts = {registration_rules.url_host(url) for url in listed}
    for url in client_urls:
        host = registration_rules.url_host(url)
        if host and host not in hosts:
            raise InvalidClientMetadata(
                f"sector_identifier_uri: the document lists no URL on the host {_ascii(host)} "
                "of the client's jwks_uri or notification endpoint (CIBA 4)."
            )
    return listed


def check_client_sector(client: Any) -> None:
    """Verify ``client``'s ``sector_identifier_uri``, if it registered one, against its URLs:
    its redirect URIs, and for a CIBA client its ``jwks_uri`` and notification endpoint."""
    uri = getattr(client, "sector_identifier_uri", "") or ""
    if not uri:
        return
    urls: list[str] = []
    if getattr(client, "backchannel_token_delivery_mode", ""):
        urls = [
            url
            for url in (
                getattr(client, "jwks_uri", ""),
                getattr(client, "backchannel_client_notification_endpoint", ""),
            )
            if url
        ]
    verify_sector_identifier(uri, urls, redirect_uris=(client.redirect_uris or "").split())


def _fetch_problem(message: str, uri: str) -> str:
    """``ciba.outbound``'s reason, without the URL (the client knows it; an error description
    holds printable ASCII only)."""
    text = message.replace(f" from {uri}", "").replace(f"from {uri} ", "").replace(f" {uri}", "")
    if text.startswith("URL refused: "):
        return text[len("URL refused: ") :]
    if text.startswith("HTTP "):
        return f"fetching the document answered {text}, not 200."
    if text.startswith("Response is larger than"):
        return f"the document is larger than {SECTOR_DOCUMENT_MAX_BYTES} bytes."
    if text.startswith("Response is not JSON"):
        return "the document is not JSON."
    if text.startswith("Could not fetch"):
        return f"the document could not be fetched ({text.rpartition(': ')[2]})."
    return _ascii(text)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
