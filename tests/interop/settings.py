"""The example project's settings, with DPoP nonces required (RFC 9449 section 8).

The example leaves nonces off; a deployment that wants proofs it can bound in time turns them
on, and then every DPoP client meets ``use_dpop_nonce`` challenges at the token endpoint and at
userinfo. The interop tier runs the example this way so that the relying parties' nonce
handling is exercised; nothing else differs from ``example_project.settings``.
"""

from example_project.settings import *  # noqa: F403
from example_project.settings import CIBA

CIBA = {**CIBA, "DPOP_NONCE_REQUIRED": True}
