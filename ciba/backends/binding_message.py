"""Deciding whether a ``binding_message`` can be shown on the authentication device."""

from __future__ import annotations

import unicodedata
from typing import Any

from ..conf import ciba_settings
from ..errors import InvalidBindingMessage


class BaseBindingMessageValidator:
    """Interface: ``validate(*, message, client)`` returns the message to store or raises
    ``ciba.errors.InvalidBindingMessage`` (CIBA §13)."""

    def validate(self, *, message: str, client: Any) -> str:
        raise NotImplementedError


class PlainTextBindingMessageValidator(BaseBindingMessageValidator):
    """Default: short, single-line, printable text in any script.

    CIBA §7.1 asks for "relatively short" messages of "a limited set of plain text
    characters" because both devices must display them for a person to compare. Peers use
    an ASCII regex; that rejects every non-English message, so this validator instead
    refuses what cannot be displayed reliably: control and format characters (which include
    bidi overrides that can make two different strings look alike), private-use and
    unassigned code points, surrogates, and anything longer than
    ``BINDING_MESSAGE_MAX_LENGTH`` characters after NFC normalisation.
    """

    _refused_categories = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"}

    def validate(self, *, message: str, client: Any) -> str:
        message = unicodedata.normalize("NFC", message)
        if not message.strip():
            raise InvalidBindingMessage("binding_message is empty.")
        limit = ciba_settings.BINDING_MESSAGE_MAX_LENGTH
        if len(message) > limit:
            raise InvalidBindingMessage(f"binding_message is longer than {limit} characters.")
        if any(unicodedata.category(ch) in self._refused_categories for ch in message):
            raise InvalidBindingMessage("binding_message contains characters that cannot be displayed.")
        return message
