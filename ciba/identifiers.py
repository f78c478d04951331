"""Which user fields a ``login_hint`` may match, and how what a client typed becomes the stored
form (CIBA §7.1: "email, phone number, account number etc.").

Being built for issue 28 (helper A): the configured identifiers (``LOGIN_HINT_IDENTIFIERS``),
the shipped normalisers (``email``, ``phone_number``, ``iban``) and the one-query lookup the
default resolver uses.
"""

from __future__ import annotations
