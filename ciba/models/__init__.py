from .application import Application
from .authentication_request import AuthenticationRequest, generate_auth_req_id
from .binding import TokenBinding
from .callback import CallbackDelivery
from .consent_client import ConsentClient
from .device import Device
from .mixins import CibaClientMixin
from .replay import UsedJti
from .signing_key import SigningKey
from .user_code import UserCode

__all__ = [
    "Application",
    "AuthenticationRequest",
    "CallbackDelivery",
    "CibaClientMixin",
    "ConsentClient",
    "Device",
    "SigningKey",
    "TokenBinding",
    "UsedJti",
    "UserCode",
    "generate_auth_req_id",
]
