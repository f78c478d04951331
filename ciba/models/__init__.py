from .access_token_grant import AccessTokenGrant
from .application import Application
from .authentication_request import AuthenticationRequest, generate_auth_req_id
from .binding import TokenBinding
from .callback import CallbackDelivery
from .consent_client import ConsentClient
from .device import Device
from .initial_access_token import InitialAccessToken
from .mixins import CibaClientMixin
from .original_authentication import OriginalAuthentication
from .resource_server import ResourceServer
from .signing_key import SigningKey
from .used_jti import UsedJti
from .user_code import UserCode, UserCodeFailures

__all__ = [
    "AccessTokenGrant",
    "Application",
    "AuthenticationRequest",
    "CallbackDelivery",
    "CibaClientMixin",
    "ConsentClient",
    "Device",
    "InitialAccessToken",
    "OriginalAuthentication",
    "ResourceServer",
    "SigningKey",
    "TokenBinding",
    "UsedJti",
    "UserCode",
    "UserCodeFailures",
    "generate_auth_req_id",
]
