"""Bodies of the consent and device APIs, read without letting their depth become a 500 or
their size an HTML page.

DRF's ``JSONParser`` turns only ``ValueError`` into a ``ParseError``; a body nested deeper
than Python's recursion limit raises ``RecursionError`` instead. The body is parsed while the
caller is still being authenticated (DOT's bearer-token check reads it), so before this any
client could answer itself a 500. A body a little shallower than the limit parses, then fails
the same way wherever it is walked again (a ``JSONField`` re-encodes what it validates), so
depth is bounded far below the limit: no request of these APIs needs more than a few levels.

Django itself refuses to read a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` or with more fields
than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, when DOT's check first touches it; Django's answer is
an HTML 400. ``parse_error_for`` names the ``ParseError`` these APIs answer instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.settings import api_settings

#: Deepest nesting of arrays and objects accepted (a Web Push subscription needs 3).
MAX_DEPTH = 32


class JSONParser(parsers.JSONParser):
    """DRF's parser, with a body nested deeper than ``MAX_DEPTH`` refused as a ``ParseError``."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_too_deep()) from None
        if _deeper_than(data, MAX_DEPTH):
            raise ParseError(_too_deep())
        return data


#: The parsers of the consent and device APIs: DRF's defaults, with this JSON parser.
PARSER_CLASSES = [
    JSONParser if parser is parsers.JSONParser else parser for parser in api_settings.DEFAULT_PARSER_CLASSES
]


def parse_error_for(exc: Exception) -> ParseError | None:
    """The ``ParseError`` for a body Django refused to read; ``None`` for any other exception."""
    if isinstance(exc, RequestDataTooBig):
        return ParseError("The request body is too large.")
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return ParseError("The request has too many fields.")
    return None


def _too_deep() -> str:
    return f"JSON parse error - arrays and objects nested deeper than {MAX_DEPTH} levels."


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit``, found without recursion."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (Mapping, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False
