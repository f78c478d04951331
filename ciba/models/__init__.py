from .application import Application
from .authentication_request import AuthenticationRequest, generate_auth_req_id
from .mixins import CibaClientMixin

__all__ = ["Application", "AuthenticationRequest", "CibaClientMixin", "generate_auth_req_id"]
