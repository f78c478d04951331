from .access_token_grant import AccessTokenGrant
from .application import Application
from .approval_evidence import ApprovalEvidence
from .authentication_request import AuthenticationRequest, generate_auth_req_id
from .binding import TokenBinding
from .callback import CallbackDelivery
from .client_block import ClientBlock
from .consent_client import ConsentClient
from .device import Device
from .initial_access_token import InitialAccessToken
from .login_hint_handle import LoginHintHandle
from .mixins import CibaClientMixin
from .original_authentication import OriginalAuthentication
from .passkey import Passkey, WebAuthnChallenge
from .resource_server import ResourceServer
from .signing_key import SigningKey
from .subject_identifier import SubjectIdentifier
from .used_jti import UsedJti
from .user_code import UserCode, UserCodeFailures

__all__ = [
    "AccessTokenGrant",
    "Application",
    "ApprovalEvidence",
    "AuthenticationRequest",
    "CallbackDelivery",
    "CibaClientMixin",
    "ClientBlock",
    "ConsentClient",
    "Device",
    "InitialAccessToken",
    "LoginHintHandle",
    "OriginalAuthentication",
    "Passkey",
    "ResourceServer",
    "SigningKey",
    "SubjectIdentifier",
    "TokenBinding",
    "UsedJti",
    "UserCode",
    "UserCodeFailures",
    "WebAuthnChallenge",
    "generate_auth_req_id",
]
