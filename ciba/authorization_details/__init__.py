"""Rich authorization requests (RFC 9396): the types a client may send, validated, rendered for
the user and narrowed on approval.

The one door for ``authorization_details``, used by every party::

    from ciba import authorization_details as rar

    details = rar.validate(rar.parse(raw), allowed_types=client.authorization_details_types)
    shown = rar.rendering(details)          # what the device displays, in the active language
    record = rar.digest(details, shown)     # the SHA-256 the approval stores
    granted = rar.narrow(details, approved) # what the client's tokens carry

Every refusal is ``ciba.errors.InvalidAuthorizationDetails`` (400
``invalid_authorization_details``, RFC 9396 §5), its description naming the object and member
at fault and never repeating the client's values. Types are ``DetailType`` subclasses named in
``CIBA["AUTHORIZATION_DETAILS_TYPES"]`` (docs/transactions.md).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from typing import Any

import rfc8785
from django.utils.translation import gettext

from ..errors import InvalidAuthorizationDetails
from .base import (
    COMMON_MEMBERS,
    SUMMARY_MAX_CHARS,
    DetailType,
    check_common_members,
    labelled,
    object_member,
    one_line,
    refuse,
    text_member,
)
from .money import currency, decimal_amount, money, number
from .parsing import MAX_DEPTH, check_shape, parse
from .registry import types
from .schema import JsonSchemaType, show

__all__ = [
    "COMMON_MEMBERS",
    "MAX_DEPTH",
    "SUMMARY_MAX_CHARS",
    "DetailType",
    "JsonSchemaType",
    "check_common_members",
    "currency",
    "decimal_amount",
    "digest",
    "labelled",
    "money",
    "narrow",
    "number",
    "object_member",
    "one_line",
    "parse",
    "refuse",
    "rendering",
    "supported_types",
    "text_member",
    "validate",
]


def supported_types() -> list[str]:
    """The types this server accepts, in the setting's order: discovery's
    ``authorization_details_types_supported`` and what a client may register (RFC 9396 §10)."""
    return list(types())


def validate(details: list[dict[str, Any]], *, allowed_types: Iterable[str]) -> list[dict[str, Any]]:
    """Each object (as ``parse`` returned them) through its type's validator. A type this
    server does not support, or one the client did not register (``allowed_types``, the
    client's ``authorization_details_types``), is refused like a malformed object (§5).
    Returns the normalised copies, which are what is stored, shown and granted."""
    if isinstance(allowed_types, str):
        raise TypeError("allowed_types is a collection of type names, not one string")
    allowed = {kind for kind in allowed_types or () if isinstance(kind, str)}
    registered = types()
    validated = []
    for index, detail in enumerate(check_shape(details)):
        kind = detail["type"]
        detail_type = registered.get(kind)
        if detail_type is None:
            raise InvalidAuthorizationDetails(
                f"authorization_details[{index}]: the type is not one this server supports "
                "(authorization_details_types_supported)"
            )
        if kind not in allowed:
            raise InvalidAuthorizationDetails(
                f"authorization_details[{index}]: this client is not registered for the type "
                f"{kind} (authorization_details_types)"
            )
        validated.append(_in_object(index, kind, detail_type.validate, detail))
    return validated


def rendering(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the user is shown for each object, in the active language and locale:
    ``{"type", "text" (several lines), "summary" (one line for a push notification)}``.

    A stored request whose type has since been unregistered is still shown, member by member,
    so the device can at least let the user deny it (``narrow`` refuses to approve it)."""
    registered = types()
    shown = []
    for detail in details:
        kind = detail["type"]
        detail_type = registered.get(kind)
        if detail_type is None:
            text, summary = _unregistered(detail)
        else:
            text, summary = detail_type.render(detail), detail_type.summary(detail)
        shown.append({"type": kind, "text": text, "summary": one_line(summary)})
    return shown


def digest(details: list[dict[str, Any]], rendering: list[dict[str, Any]]) -> str:
    """The SHA-256 (hex) of what was displayed: the objects and their rendering, serialised
    by RFC 8785 (JSON Canonicalization Scheme), so a device or an auditor can recompute it
    from the same JSON with any JCS implementation."""
    document = {"authorization_details": details, "rendering": rendering}
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def narrow(requested: list[dict[str, Any]], approved: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """What the user approved, checked against what was requested.

    ``None`` approves the request as it is. Otherwise each approved object must narrow a
    requested one of its type, in the request's order, by that type's rule (``payment_initiation``:
    a lower amount, nothing else changed); objects left out are not granted. Approving objects
    when none were requested, or an object no requested one allows, is refused."""
    if approved is None:
        return copy.deepcopy(requested)
    approved = parse(approved)
    registered = types()
    granted: list[dict[str, Any]] = []
    start = 0
    for index, offer in enumerate(approved):
        kind = offer["type"]
        detail_type = registered.get(kind)
        if detail_type is None:
            raise InvalidAuthorizationDetails(
                f"approved authorization_details[{index}]: the type is not one this server supports"
            )
        candidates = [i for i in range(start, len(requested)) if requested[i]["type"] == kind]
        if not candidates:
            raise InvalidAuthorizationDetails(
                f"approved authorization_details[{index}] ({kind}): no requested object of this type "
                "is left to approve (approved objects keep the request's order)"
            )
        refusals: list[InvalidAuthorizationDetails] = []
        for position in candidates:
            try:
                narrowed = _in_object(
                    index, kind, detail_type.narrow, requested[position], offer, approved=True
                )
            except InvalidAuthorizationDetails as exc:
                refusals.append(exc)
                continue
            granted.append(narrowed)
            start = position + 1
            break
        else:
            raise refusals[0]
    return granted


def _in_object(index: int, kind: str, method: Any, *args: Any, approved: bool = False) -> dict[str, Any]:
    """``method(*args)``, its refusal placed: which object, of which (registered) type."""
    try:
        return method(*args)
    except InvalidAuthorizationDetails as exc:
        where = f"{'approved ' if approved else ''}authorization_details[{index}] ({kind})"
        raise InvalidAuthorizationDetails(f"{where}: {exc.description}") from None


def _unregistered(detail: dict[str, Any]) -> tuple[str, str]:
    kind = detail["type"]
    lines = [kind] + [labelled(name, show(value)) for name, value in detail.items() if name != "type"]
    return "\n".join(lines), gettext("%(type)s (no longer supported)") % {"type": kind}
