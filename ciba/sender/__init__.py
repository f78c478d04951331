"""Sender-constrained tokens: who may present a token, proven by TLS certificate or DPoP key.

* ``certificates``: the client certificate a trusted TLS terminator forwarded, its
  thumbprint (``x5t#S256``) and the RFC 8705 §2 matching rules.
* ``dpop``: DPoP proofs (RFC 9449): validation, nonces, key thumbprints (``jkt``).
* ``bindings``: which certificate or key a token is bound to, and checking a presentation.
"""
