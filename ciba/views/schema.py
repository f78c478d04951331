"""OpenAPI (drf-spectacular) description of how the consent API is authenticated."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.django_oauth_toolkit import DjangoOAuthToolkitScheme

from ..conf import ciba_settings
from .permissions import IsConsentingUser


class ConsentTokenScheme(DjangoOAuthToolkitScheme):
    """DOT bearer tokens on the consent API need ``CIBA["CONSENT_SCOPE"]``.

    drf-spectacular's own DOT extension only recognises DOT's scope permissions and would
    leave the bearer scheme out of the consent endpoints' security requirements.
    """

    priority = 1

    def get_security_requirement(self, auto_schema: Any) -> Any:
        if any(isinstance(p, IsConsentingUser) for p in auto_schema.view.get_permissions()):
            return {self.name: [ciba_settings.CONSENT_SCOPE]}
        return super().get_security_requirement(auto_schema)
