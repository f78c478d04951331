"""OpenAPI (drf-spectacular) description of how the consent API and the backchannel endpoint
are authenticated."""

from __future__ import annotations

from typing import Any

from drf_spectacular.contrib.django_oauth_toolkit import DjangoOAuthToolkitScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension

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


class ClientAuthenticationScheme(OpenApiAuthenticationExtension):
    """The backchannel endpoint authenticates the client (CIBA §7.1) with its registered method.

    Without this, drf-spectacular cannot describe the view's authentication class and
    ``check --deploy`` warns (``drf_spectacular.W001``/``W002``). OpenAPI can name only HTTP
    Basic; the other methods travel in the form or in the TLS connection, as the description says.
    """

    target_class = "ciba.views.backchannel_hooks.ClientAuthentication"
    name = "cibaClient"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": (
                "The client's registered token_endpoint_auth_method: HTTP Basic "
                "(client_secret_basic), or client_secret_post, client_secret_jwt, private_key_jwt "
                "in the form, or a TLS client certificate (RFC 8705)."
            ),
        }
