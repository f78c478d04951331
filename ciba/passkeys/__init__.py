"""Passkeys (WebAuthn) on the authentication device: enrollment, sign-in, and approval of one
CIBA request with an assertion whose challenge is bound to that very transaction (dynamic
linking). docs/authentication.md explains the levels and what a relying party can rely on.

The ceremonies use py_webauthn (Duo Labs' ``webauthn``) for options, CBOR, attestation and
signature verification; ciba adds what is specific to approving a CIBA request: challenges
stored and consumed once (``challenges``), the transaction digest inside the approval
challenge (``linking``), sign-count clone detection (``ceremony``), and the level and RFC 8176
``amr`` an assertion proves (``flags``). Every refusal is ``ciba.errors.InvalidAuthentication``
with a sentence for the user; nothing else escapes, whatever the device sent.
"""

from .approval import approval_options, verify_approval
from .enrollment import enroll, registration_options, remove
from .linking import transaction, transaction_digest
from .relying_party import RelyingParty, relying_party
from .sign_in import sign_in_options, verify_sign_in

__all__ = [
    "RelyingParty",
    "approval_options",
    "enroll",
    "registration_options",
    "relying_party",
    "remove",
    "sign_in_options",
    "transaction",
    "transaction_digest",
    "verify_approval",
    "verify_sign_in",
]
