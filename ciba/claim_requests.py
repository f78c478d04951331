"""Reading one member of an OIDC Core §5.5 claims request, once for both wings.

The backchannel endpoint reads a claims request when it stores it (an essential ``acr``, the
values a claim must have) and the token endpoint reads the stored copy when it releases
claims; both must agree on what ``value`` and ``values`` mean, so the rule lives here, below
both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def accepted_values(request: Mapping[str, Any] | None) -> list[Any] | None:
    """The values a claim request accepts (``values``, else ``value``); ``None``: any value."""
    if not request:
        return None
    if "values" in request:
        return list(request["values"])
    if "value" in request:
        return [request["value"]]
    return None
