"""Who may register a client (RFC 7591 §3): an initial access token, a software statement from
a trusted directory, or, where a site has opened registration, anyone.

Registration is closed by default. ``admit`` decides before any metadata is looked at:

* An ``Authorization: Bearer`` initial access token (RFC 7591 §3), issued by
  ``manage.py ciba_initial_access_token`` or the admin: source ``"initial_access_token"``. A
  token that is unknown, revoked, expired or used up is refused (``invalid_token``, 401), even
  where registration is open: a caller who presents a credential means to use it.
* A ``software_statement`` (``software_statements``) from ``SOFTWARE_STATEMENT_ISSUERS``:
  source ``"software_statement"``, unless an initial access token came too. Its claims
  override the request's metadata. ``SOFTWARE_STATEMENT_REQUIRED`` makes one necessary for
  every registration.
* Nothing, with ``REGISTRATION_OPEN``: source ``"open"``, limited per address by
  ``OpenRegistrationThrottle``. Without it: ``invalid_token`` (401).

The registration view validates the metadata (``ciba.registration_rules``), checks a token's
``allowed_metadata`` with ``check_allowed`` and, in the transaction that saves the client,
spends the token's use with ``Admission.consume``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest
from rest_framework.throttling import SimpleRateThrottle

from ..client_auth import client_address
from ..conf import ciba_settings
from ..errors import InvalidClientMetadata, InvalidSoftwareStatement, InvalidToken, TemporarilyUnavailable
from ..models import InitialAccessToken
from ..outages import is_outage
from ..proxies import meta_of
from . import initial_access_tokens, metadata, software_statements

logger = logging.getLogger("ciba.outages")

SOURCE_INITIAL_ACCESS_TOKEN = "initial_access_token"
SOURCE_SOFTWARE_STATEMENT = "software_statement"
SOURCE_OPEN = "open"


@dataclass(frozen=True)
class Admission:
    """Why a registration may go ahead, and what it may register.

    ``document`` is the metadata to validate: the request's, with a trusted software
    statement's claims taking precedence and without ``software_statement`` itself, which is
    ``software_statement`` here as presented (``""`` if none). ``allowed_metadata`` narrows
    what an initial access token's holder may register (``{}``: no narrowing).
    """

    document: dict[str, Any]
    source: str
    initial_access_token: InitialAccessToken | None = None
    allowed_metadata: dict[str, Any] = field(default_factory=dict)
    software_statement: str = ""

    def consume(self) -> None:
        """Spend one use of the initial access token (nothing for other sources). Call it
        once, inside the transaction that saves the client: the conditional ``UPDATE`` makes
        a concurrent registration that took the last use, or a revocation meanwhile, refuse
        this one (``invalid_token``) and roll the client back."""
        if self.initial_access_token is None:
            return
        if not initial_access_tokens.take_one_use(self.initial_access_token.pk):
            raise InvalidToken(
                "The initial access token was used up, revoked or expired while this registration ran."
            )


def admit(request: HttpRequest, document: dict[str, Any]) -> Admission:
    """Whether ``request`` may register the client ``document`` describes (see the module
    docstring); raises ``InvalidToken``, ``InvalidSoftwareStatement``,
    ``UnapprovedSoftwareStatement`` or (a directory's keys unreachable)
    ``TemporarilyUnavailable``. Validates no metadata."""
    if not isinstance(document, dict):
        raise InvalidClientMetadata("The registration request must be a JSON object of client metadata.")
    token = bearer_token(request)
    row = _usable_token(token) if token is not None else None
    statement = document.get("software_statement")
    if statement is None:
        if ciba_settings.SOFTWARE_STATEMENT_REQUIRED:
            raise InvalidSoftwareStatement(
                "software_statement is required: this server registers only software a trusted "
                "directory has signed a statement for."
            )
        claims: dict[str, Any] = {}
    else:
        claims = software_statements.verify(statement)
    merged = software_statements.overridden(document, claims)  # without software_statement itself
    if row is not None:
        source = SOURCE_INITIAL_ACCESS_TOKEN
    elif statement is not None:
        source = SOURCE_SOFTWARE_STATEMENT
    elif ciba_settings.REGISTRATION_OPEN:
        source = SOURCE_OPEN
    else:
        raise InvalidToken(
            "Registration needs an initial access token (Authorization: Bearer) or a software statement."
        )
    return Admission(
        document=merged,
        source=source,
        initial_access_token=row,
        allowed_metadata=_allowed_metadata(row) if row is not None else {},
        software_statement=statement or "",
    )


def check_allowed(admission: Admission, document: dict[str, Any]) -> None:
    """Refuse metadata the initial access token does not allow (``invalid_client_metadata``
    naming the field). Pass the metadata as it will be stored, defaults applied: a default
    (RFC 7591's ``grant_types``, say) is registered as surely as a value sent. A list value
    (``grant_types``, ``redirect_uris``, ``contacts``) is allowed when each of its items is; a
    name the token constrains but the document lacks is allowed (nothing is registered)."""
    for name, allowed in admission.allowed_metadata.items():
        if name not in document:
            continue
        permitted = allowed if isinstance(allowed, list) else [allowed]
        value = document[name]
        values = value if isinstance(value, list) else [value]
        if any(not _among(item, permitted) for item in values):
            shown = ", ".join(json.dumps(v) for v in permitted) or "none"
            raise InvalidClientMetadata(
                f"{name}: the initial access token does not allow this value (it allows: {shown})."
            )


def bearer_token(request: Any) -> str | None:
    """The initial access token of ``Authorization: Bearer`` (RFC 6750 §2.1), ``None`` when
    the header is absent; ``InvalidToken`` for any other kind of credential."""
    header = str(meta_of(request).get("HTTP_AUTHORIZATION", "")).strip()
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken(
            "The registration endpoint takes an initial access token as Authorization: Bearer."
        )
    return token


def _usable_token(token: str) -> InitialAccessToken:
    row = initial_access_tokens.find(token)
    if row is None:
        raise InvalidToken("The initial access token is not valid.")
    if reason := initial_access_tokens.problem(row):
        raise InvalidToken(reason)
    return row


def _allowed_metadata(row: InitialAccessToken) -> dict[str, list[Any]]:
    try:
        return initial_access_tokens.normalised_allowed_metadata(row.allowed_metadata or {})
    except ValueError:
        # Saved around the admin's validation (a shell, a fixture): refusing is safe, guessing
        # what the operator meant to allow is not.
        logger.error("Initial access token %s has unreadable allowed_metadata; it is refused.", row.pk)
        raise InvalidToken("The initial access token cannot be used; ask its issuer for a new one.") from None


def _among(value: Any, permitted: list[Any]) -> bool:
    # 1 == True in Python; metadata distinguishes them.
    return any(value == option and type(value) is type(option) for option in permitted)


class OpenRegistrationThrottle(SimpleRateThrottle):
    """``REGISTRATION_OPEN_RATE`` open registrations per address (DRF rate syntax; None: off).

    Counts only what would be an open registration: a ``POST`` while ``REGISTRATION_OPEN`` is
    on that carries neither an ``Authorization`` header nor a ``software_statement``. A caller
    who adds a made-up credential to escape the count is refused by ``admit`` instead, and
    registers nothing. The body is peeked at from Django's copy, never through DRF's parsers,
    so the view still sees a malformed body as malformed.

    The address is the proxy-aware one of the failed-authentication guard. With the cache
    unreachable, open registration answers ``temporarily_unavailable``: it is anonymous, and
    an unlimited anonymous endpoint is the worse harm.
    """

    scope = "ciba_registration_open"

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.warning("Open registration refused: the cache is unavailable (%s)", type(exc).__name__)
            raise TemporarilyUnavailable(retry_after=30) from None

    def get_rate(self) -> str | None:
        return ciba_settings.REGISTRATION_OPEN_RATE

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not _would_be_open(request):
            return None
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


def _would_be_open(request: Any) -> bool:
    if request.method != "POST" or not ciba_settings.REGISTRATION_OPEN:
        return False
    if str(meta_of(request).get("HTTP_AUTHORIZATION", "")).strip():
        return False
    return not _presents_statement(getattr(request, "_request", request))


def _presents_statement(request: HttpRequest) -> bool:
    try:
        # Beyond the endpoint's limit the view refuses the body unread: so does this.
        if int(request.META.get("CONTENT_LENGTH") or 0) > metadata.MAX_DOCUMENT_BYTES:
            return False
        document = json.loads(request.body)
    except Exception:  # noqa: BLE001 - an unreadable body is no statement; the view refuses it
        return False
    return isinstance(document, dict) and document.get("software_statement") is not None
