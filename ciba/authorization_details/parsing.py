"""Reading ``authorization_details`` (RFC 9396 §2) from a form parameter or a signed request,
within limits, before any type looks at it.

Everything a client sends here may end up stored (a JSON column on PostgreSQL), displayed on
the user's phone and hashed as the record of what the user saw. So the structure is checked
once, here, for every type alike:

* size (``AUTHORIZATION_DETAILS_MAX_BYTES``), objects (``AUTHORIZATION_DETAILS_MAX_ITEMS``) and
  nesting (``MAX_DEPTH``), so no request is expensive to read, store or show;
* I-JSON (RFC 7493): no duplicate member names (two parsers, two answers), finite numbers,
  integers a JavaScript device reads exactly;
* text that displays as what it is: no control characters, line or paragraph separators or
  bidirectional overrides (a payee name that reverses or breaks the line after it could make
  the screen say something the object does not), no NUL or lone surrogates (which PostgreSQL's
  ``jsonb`` refuses: a 500 after validation otherwise).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..conf import ciba_settings
from ..errors import InvalidAuthorizationDetails

#: Deepest nesting accepted, counting the array itself: RFC 9396's examples need 3
#: (array, object, instructedAmount); a site's own type has room for several more.
MAX_DEPTH = 10
#: RFC 7493 §2.2: integers beyond this lose precision in a JavaScript (or any IEEE 754) reader.
_SAFE_INTEGER = 2**53 - 1
#: C0 and C1 controls, the line and paragraph separators, and the bidirectional embeddings,
#: overrides and isolates of UAX #9.
_MISLEADING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse(why: str) -> InvalidAuthorizationDetails:
    return InvalidAuthorizationDetails(f"authorization_details {why}")


def parse(raw: str | list[Any]) -> list[dict[str, Any]]:
    """``raw`` (the JSON text of the form parameter, or the array a signed request carried)
    as a list of objects, each with a string ``type``; ``InvalidAuthorizationDetails`` naming
    the limit or rule it breaks otherwise."""
    max_bytes = ciba_settings.AUTHORIZATION_DETAILS_MAX_BYTES
    if isinstance(raw, str):
        if len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
            raise _refuse(f"must be at most {max_bytes} bytes of JSON")
        value = _loads(raw)
        _check_values(value)
    elif isinstance(raw, list):
        _check_values(raw)
        if len(json.dumps(raw, ensure_ascii=False).encode("utf-8")) > max_bytes:
            raise _refuse(f"must be at most {max_bytes} bytes of JSON")
        value = raw
    else:
        raise _refuse("must be a JSON array of objects")
    return check_shape(value)


def check_shape(value: Any) -> list[dict[str, Any]]:
    """The array itself (RFC 9396 §2): non-empty, at most ``AUTHORIZATION_DETAILS_MAX_ITEMS``
    objects, each with a non-empty string ``type``."""
    if not isinstance(value, list):
        raise _refuse("must be a JSON array of objects")
    if not value:
        raise _refuse("must hold at least one object")
    max_items = ciba_settings.AUTHORIZATION_DETAILS_MAX_ITEMS
    if len(value) > max_items:
        raise _refuse(f"may hold at most {max_items} objects")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidAuthorizationDetails(f"authorization_details[{index}]: must be a JSON object")
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidAuthorizationDetails(
                f"authorization_details[{index}]: must have a type member holding a non-empty string"
            )
    return value


def _loads(raw: str) -> Any:
    try:
        return json.loads(
            raw,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except InvalidAuthorizationDetails:
        raise
    except RecursionError:
        raise _refuse(f"may nest at most {MAX_DEPTH} levels deep") from None
    except ValueError:  # malformed JSON, or an integer of more digits than Python reads
        raise _refuse("must be valid JSON (RFC 8259)") from None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _refuse("must not repeat a member name within an object (RFC 7493)")
    return result


def _no_constant(name: str) -> Any:
    raise _refuse("must not hold NaN or Infinity (RFC 8259)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _refuse("must not hold a number too large to represent (RFC 7493)")
    return number


def _check_values(value: Any) -> None:
    """Every value of the tree, without recursion (the tree's depth is what is being bounded)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise _refuse(f"may nest at most {MAX_DEPTH} levels deep")
            if isinstance(node, dict):
                for key, child in node.items():
                    if not isinstance(key, str):
                        raise _refuse("must be JSON: member names are strings")
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str):
            _check_text(node)
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if abs(node) > _SAFE_INTEGER:
                raise _refuse("must not hold an integer beyond 2^53-1 in magnitude (RFC 7493)")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise _refuse("must not hold NaN or Infinity (RFC 8259)")
        else:
            raise _refuse("must be JSON")


def _check_text(text: str) -> None:
    if _MISLEADING.search(text):
        raise _refuse(
            "must not contain control characters, line separators or bidirectional "
            "overrides in its strings (the user must see what they approve as it is)"
        )
    if _SURROGATE.search(text):
        raise _refuse("must hold only valid Unicode text (no lone surrogates)")
