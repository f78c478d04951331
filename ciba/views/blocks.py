"""The consent API's block list: the clients the user blocked from asking them ("I did not ask
for this" with ``block``), and lifting a block.

A block is made only by reporting a request (``POST /ciba/requests/{id}/report/``), so the user
blocks a client they have actually seen asking; here they review and lift them. A blocked
client's new requests are refused with ``access_denied`` before anything reaches the user
(``ciba.user_limits``); lifting a block lets it ask again from the next request on.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from .. import services
from ..models import ClientBlock
from .consent import ConsentAuthenticationMixin
from .serializers import ClientBlockSerializer

CLIENT_ID = OpenApiParameter(
    "client_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The blocked client's client_id."
)


@extend_schema(tags=["consent"])
@extend_schema_view(
    list=extend_schema(summary="The clients the caller blocked", description="Newest first."),
    destroy=extend_schema(
        parameters=[CLIENT_ID],
        responses={204: None},
        summary="Unblock a client",
        description="The client may send the caller requests again. 404 when the caller has not "
        "blocked it (or it does not exist: the two are not told apart).",
    ),
)
class ClientBlockViewSet(
    ConsentAuthenticationMixin, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """The caller's blocks, one per client."""

    serializer_class = ClientBlockSerializer
    lookup_field = "client__client_id"
    lookup_url_kwarg = "client_id"
    # client_id values are VSCHAR (RFC 6749 A.1) in principle; ciba and DOT make URL-safe ones.
    lookup_value_regex = r"[A-Za-z0-9._~-]{1,255}"
    pagination_class = None
    http_method_names = ["get", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        return (
            ClientBlock.objects.filter(user=self.request.user)
            .select_related("client", "reported_request")
            .order_by("-created_at", "-pk")
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        block = self.get_object()  # 404 unless it is the caller's
        services.unblock(request.user, block.client)
        return Response(status=status.HTTP_204_NO_CONTENT)
