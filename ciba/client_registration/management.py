"""Registering a client (RFC 7591 §3) and managing it with its registration access token
(RFC 7592 §2): read, full replacement, delete.

The view (``ciba.views.registration``) only moves HTTP in and out; everything a registration
decides is here, so that a test, a command or another front end registers exactly as the
endpoint does. ``admission`` decides who may register; ``metadata`` what a document means
and whether the row it makes is valid (``ciba.registration_rules``); a
``sector_identifier_uri`` is fetched and checked against the client's URLs
(``ciba.subjects.check_client_sector``) once everything else about the client is valid.

A registration access token is 256 random bits. Only its SHA-256 is stored
(``registration_access_token_hash``): a slow or keyed hash would add nothing to a value that
cannot be guessed, and a lookup by hash costs nothing to flood. A client that was not
registered dynamically has no hash, so no token reaches it: it is managed in the admin.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import check_password
from django.db import router, transaction
from django.http import HttpRequest
from oauth2_provider.models import get_application_model

from .. import jose, subjects
from ..conf import ciba_settings
from ..errors import InvalidClientMetadata, InvalidToken
from . import admission as admission_module
from . import metadata, software_statements

logger = logging.getLogger("ciba.registration")

#: Bytes of randomness of a registration access token (256 bits).
TOKEN_BYTES = 32
#: The members of an RFC 7591 response a client may send back in an RFC 7592 update: the
#: server sets them, so they are not metadata to change (§2.2 asks the client to leave them
#: out; a client that echoes its whole registration is not refused for it).
SERVER_MEMBERS = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)

#: Builds the ``registration_client_uri`` of a client id (the view knows the URL).
UriBuilder = Callable[[str], str]


@dataclass(frozen=True)
class Managed:
    """A client found by its registration access token, and the token presented."""

    client: Any
    token: str


@dataclass(frozen=True)
class Outcome:
    """A registered, read or updated client, as its response body: the stored metadata
    (``metadata.to_document``), a secret or token shown once, and where to manage it."""

    client: Any
    body: dict[str, Any]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_access_token(client: Any) -> str:
    """A new registration access token for ``client`` (its hash set, not saved): the old one
    stops working when the row is saved."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    client.registration_access_token_hash = token_hash(token)
    return token


def register(request: HttpRequest, document: Any, client_uri: UriBuilder) -> Outcome:
    """Register the client ``document`` describes, if ``request`` may (``admission.admit``) and
    the client is valid (``metadata.validate``); nothing is stored otherwise. The initial access
    token's use is spent in the transaction that stores the client."""
    admitted = admission_module.admit(request, document)
    values = metadata.read(admitted.document)
    client = get_application_model()()
    metadata.apply(client, values)
    client.software_statement = admitted.software_statement
    secret = metadata.issue_secret(client)
    metadata.validate(client)
    admission_module.check_allowed(admitted, metadata.to_document(client))
    subjects.check_client_sector(client)  # fetched last: only for an otherwise valid client
    token = new_access_token(client)
    with transaction.atomic(using=router.db_for_write(type(client))):
        admitted.consume()
        client.save()
    logger.info(
        "Client %s registered dynamically (%s%s).",
        client.client_id,
        admitted.source,
        f" {admitted.initial_access_token.pk}" if admitted.initial_access_token is not None else "",
    )
    return Outcome(client, _body(client, client_uri, secret=secret, token=token))


def authenticate(request: HttpRequest, client_id: str) -> Managed:
    """The client ``client_id`` names, if the request's ``Authorization: Bearer`` is its
    registration access token; ``InvalidToken`` (401) otherwise: a wrong, missing or old token,
    a token of another client, a client that does not exist or was not registered dynamically.
    The answer is the same for each, so the endpoint tells nobody which clients exist."""
    token = admission_module.bearer_token(request)
    if token is None:
        raise InvalidToken("Send the registration access token as Authorization: Bearer.")
    presented = token_hash(token)
    client = get_application_model().objects.filter(client_id=client_id).first()
    stored = client.registration_access_token_hash if client is not None else ""
    # Compared whether or not the client exists, so the time taken says nothing either.
    matches = hmac.compare_digest(presented, stored or "0" * len(presented))
    if client is None or not stored or not matches:
        raise InvalidToken("The registration access token is not valid for this client.")
    return Managed(client, token)


def read(managed: Managed, client_uri: UriBuilder) -> Outcome:
    """RFC 7592 §2.1: the client's current registration, with the token it was read with (§3
    makes ``registration_access_token`` a required member of every response). A secret is never
    shown again: the server keeps only its hash (or, for ``client_secret_jwt``, needs it
    unchanged)."""
    return Outcome(managed.client, _body(managed.client, client_uri, token=managed.token))


def update(managed: Managed, document: Any, client_uri: UriBuilder) -> Outcome:
    """RFC 7592 §2.2: replace the client's metadata with ``document`` (a member left out is
    reset), validated as a registration is. ``client_id`` must be the client's own; a
    ``client_secret``, if sent, its current one. A statement the client registered with keeps
    overriding what it may change (its claims were verified then); the initial access token's
    ``allowed_metadata`` is not re-applied (the token may be long gone). A new secret is issued
    only when the new method needs one the client does not have; with
    ``REGISTRATION_ACCESS_TOKEN_ROTATE`` a new registration access token replaces the old, and
    without it the response repeats the one presented (RFC 7592 §3)."""
    client = managed.client
    if not isinstance(document, dict):
        raise InvalidClientMetadata("The update request must be a JSON object of client metadata.")
    if document.get("client_id") != client.client_id:
        raise InvalidClientMetadata("client_id: the update must name this client's client_id.")
    _check_secret(client, document.get("client_secret"))
    changes = {name: value for name, value in document.items() if name not in SERVER_MEMBERS}
    if client.software_statement:
        changes = software_statements.overridden(changes, _statement_claims(client.software_statement))
    values = metadata.read(changes)
    metadata.apply(client, values)
    secret = metadata.issue_secret(client)
    metadata.validate(client)
    subjects.check_client_sector(client)
    token = new_access_token(client) if ciba_settings.REGISTRATION_ACCESS_TOKEN_ROTATE else managed.token
    client.save()
    logger.info("Client %s updated its registration (RFC 7592).", client.client_id)
    return Outcome(client, _body(client, client_uri, secret=secret, token=token))


def delete(managed: Managed) -> None:
    """RFC 7592 §2.3: the client is gone; its unfinished requests end, its tokens and queued
    callbacks with it (``ciba.services.end_client``, run for every delete of a client)."""
    client_id = managed.client.client_id
    managed.client.delete()
    logger.info("Client %s deleted its registration (RFC 7592).", client_id)


def _check_secret(client: Any, sent: Any) -> None:
    if sent is None:
        return
    stored = client.client_secret
    if not isinstance(sent, str) or not stored:
        raise InvalidClientMetadata("client_secret: not this client's secret.")
    if client._client_secret_is_hashed(stored):
        same = check_password(sent, stored)
    else:
        same = hmac.compare_digest(sent.encode(), stored.encode())
    if not same:
        raise InvalidClientMetadata("client_secret: not this client's secret.")


def _statement_claims(statement: str) -> dict[str, Any]:
    try:
        return jose.unverified_claims(statement)
    except jose.JoseError:
        return {}


def _body(
    client: Any, client_uri: UriBuilder, *, secret: str | None = None, token: str | None = None
) -> dict:
    body = metadata.to_document(client)
    if secret:
        body["client_secret"] = secret
    if client.software_statement:
        body["software_statement"] = client.software_statement
    body["registration_client_uri"] = client_uri(client.client_id)
    if token:
        body["registration_access_token"] = token
    return body
