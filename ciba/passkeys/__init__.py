"""Passkeys (WebAuthn) on the authentication device: enrollment, sign-in, and approval of one
CIBA request with an assertion whose challenge is bound to that very transaction (dynamic
linking). docs/authentication.md explains the levels and what a relying party can rely on.
"""
