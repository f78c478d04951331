"""RFC 8414 metadata at the location the issuer identifier names, from the site's root.

RFC 8414 §3.1 inserts the well-known suffix between the host and the issuer's path: the
metadata of ``https://host/o`` lives at ``https://host/.well-known/oauth-authorization-server/o``,
outside the ``o/`` prefix under which a site mounts DOT's URLs, so DOT's view there never
answers it and a relying party discovering in OAuth mode (openid-client's ``oauth2`` algorithm)
fails. ``ciba.well_known_urls``, included at the root, routes that location here.

The document is ``CibaOAuthServerMetadataView``'s (CIBA-aware), served only at the location of
this server's issuer: DOT's view reflects any suffix into the ``issuer`` member, so
``/.well-known/oauth-authorization-server/elsewhere`` would describe a server that does not
exist. RFC 8414 §3.3 requires ``issuer`` to be the identifier the location was built from.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from ..endpoints import issuer
from .discovery import CibaOAuthServerMetadataView

#: RFC 8414 §3: the well-known URI suffix of authorization server metadata.
OAUTH_AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"


def metadata_path(issuer_identifier: str) -> str:
    """The path of RFC 8414 §3.1's metadata URL for ``issuer_identifier``: the well-known suffix
    inserted before the issuer's path, any terminating ``/`` removed first."""
    return OAUTH_AUTHORIZATION_SERVER + urlsplit(issuer_identifier).path.rstrip("/")


class IssuerMetadataView(CibaOAuthServerMetadataView):
    """The CIBA-aware RFC 8414 document at ``/.well-known/oauth-authorization-server<issuer path>``;
    404 at any other path."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        identifier = issuer(request)
        if request.path != unquote(metadata_path(identifier)):
            return HttpResponseNotFound()
        response = super().get(request, *args, **kwargs)
        if response.status_code == 200:
            # DOT derives issuer from the request's path; at this location it is the
            # configured one, stated here so the two can never differ.
            data = json.loads(response.content)
            data["issuer"] = identifier
            response.content = json.dumps(data).encode()
        return response
