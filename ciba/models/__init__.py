from .application import Application
from .authentication_request import AuthenticationRequest, generate_auth_req_id
from .device import Device
from .mixins import CibaClientMixin

__all__ = ["Application", "AuthenticationRequest", "CibaClientMixin", "Device", "generate_auth_req_id"]
