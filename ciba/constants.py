"""Protocol identifiers from CIBA Core 1.0 and the RFCs it builds on.

These are wire values: they never change with settings and are never translated.
"""

#: Clock skew tolerated on both sides of JWT time claims, in seconds.
CLOCK_LEEWAY = 30

#: CIBA §10.1: the extension grant type clients use at the token endpoint.
CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"

#: CIBA §10.3.1 / §10.1.1: ID token claims binding tokens to the request.
AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id"
RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash"
#: The claims this server's ID tokens carry about the token and the authentication rather than
#: the user (OIDC Core §2, §3.1.3.6; CIBA §10.1.1, §10.3.1): discovery's ``claims_supported``
#: lists them beside the user's, and no user claim may take one of these names.
PROTOCOL_CLAIMS = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "jti",
    "at_hash",
    AUTH_REQ_ID_CLAIM,
    RT_HASH_CLAIM,
)

MODE_POLL = "poll"
MODE_PING = "ping"
MODE_PUSH = "push"
#: CIBA §5, in the order the spec introduces them.
DELIVERY_MODES = (MODE_POLL, MODE_PING, MODE_PUSH)
#: Modes whose clients collect tokens at the token endpoint (CIBA §10.1; push may not, §11).
TOKEN_ENDPOINT_MODES = (MODE_POLL, MODE_PING)
#: Modes that call the client's notification endpoint (CIBA §10.2, §10.3).
NOTIFICATION_MODES = (MODE_PING, MODE_PUSH)

#: OpenID Connect Core §9 client authentication methods a CIBA client may register.
AUTH_CLIENT_SECRET_BASIC = "client_secret_basic"
AUTH_CLIENT_SECRET_POST = "client_secret_post"
AUTH_CLIENT_SECRET_JWT = "client_secret_jwt"
AUTH_PRIVATE_KEY_JWT = "private_key_jwt"
#: RFC 8705 §2: mutual-TLS client authentication, by PKI (§2.1) or a self-signed certificate (§2.2).
AUTH_TLS_CLIENT_AUTH = "tls_client_auth"
AUTH_SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"
MTLS_AUTH_METHODS = (AUTH_TLS_CLIENT_AUTH, AUTH_SELF_SIGNED_TLS_CLIENT_AUTH)
TOKEN_ENDPOINT_AUTH_METHODS = (
    AUTH_CLIENT_SECRET_BASIC,
    AUTH_CLIENT_SECRET_POST,
    AUTH_CLIENT_SECRET_JWT,
    AUTH_PRIVATE_KEY_JWT,
    *MTLS_AUTH_METHODS,
)

#: RFC 8705 §2.1.2: how a ``tls_client_auth`` client names its certificate (exactly one).
TLS_CLIENT_AUTH_NAME_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)

#: Asymmetric JWS algorithms (RFC 7518 §3.1, RFC 8037) a client may register for signed
#: authentication requests. CIBA §7.1.1 requires asymmetric signatures, so neither ``none``
#: nor the HMAC family can ever appear here, whatever the settings say.
ASYMMETRIC_JWS_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    # RFC 9864 §2.2: the fully-specified EdDSA names, each bound to one curve (EdDSA is either).
    "Ed25519",
    "Ed448",
)

#: The key each asymmetric algorithm signs with: its ``kty`` and, for EC and OKP keys, the
#: curves it may be on (RFC 7518 §3.3-3.5, RFC 8037 §3.1, RFC 9864 §2.2). A JWT is verified
#: only with a key of its algorithm's type and curve (RFC 8725 §3.1).
JWS_KEY_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{alg: ("RSA", ()) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", ("P-256",)),
    "ES384": ("EC", ("P-384",)),
    "ES512": ("EC", ("P-521",)),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
    "Ed25519": ("OKP", ("Ed25519",)),
    "Ed448": ("OKP", ("Ed448",)),
}

#: HMAC algorithms, usable only for client_secret_jwt assertions (keyed with the client secret).
HMAC_JWS_ALGORITHMS = ("HS256", "HS384", "HS512")

#: The algorithms a client assertion of each JWT method may use (RFC 7523; OIDC Core §9): the
#: client secret keys an HMAC, a registered key an asymmetric signature, never the other way.
#: A client that registers no ``token_endpoint_auth_signing_alg`` may use any of its method's
#: (OIDC Registration §2), as the security profile narrows them.
ASSERTION_ALGORITHMS = {
    AUTH_CLIENT_SECRET_JWT: HMAC_JWS_ALGORITHMS,
    AUTH_PRIVATE_KEY_JWT: ASYMMETRIC_JWS_ALGORITHMS,
}

#: RFC 7523 §2.2: the client_assertion_type of a JWT client assertion.
JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

#: CIBA §7.3's auth_req_id alphabet, bounded by the column: anything else (a NUL, which
#: PostgreSQL cannot even compare, or a megabyte of text) was never issued by this server.
#: Match with ``re.fullmatch`` (``$`` would accept a trailing newline).
AUTH_REQ_ID_PATTERN = r"[A-Za-z0-9._-]{1,255}"

#: RFC 6750 §2.1 b64token: the syntax a client_notification_token must follow (CIBA §7.1).
#: Match with ``re.fullmatch``: with ``$``, a token ending in a newline was accepted and then
#: every callback carrying it failed locally.
B64TOKEN_PATTERN = r"[A-Za-z0-9\-._~+/]+=*"
#: CIBA §7.1: "The length of the token MUST NOT exceed 1024 characters".
CLIENT_NOTIFICATION_TOKEN_MAX_LENGTH = 1024

#: ID-token signing algorithms this server can produce with its own key set (``ciba_keys``);
#: DOT's own RS256 (``OIDC_RSA_PRIVATE_KEY``) and HS256 (client secret) stay available too.
ID_TOKEN_SIGNING_ALGS = ("RS256", "PS256", "ES256")

#: RFC 9449: the DPoP proof's JWT type, the token type of DPoP-bound tokens, and the header.
DPOP_JWT_TYPE = "dpop+jwt"
DPOP_TOKEN_TYPE = "DPoP"

#: FAPI-CIBA (FAPI 1 Advanced, §8.6): the only JWS algorithms, and client authentication methods.
PROFILE_FAPI_CIBA = "fapi-ciba"
PROFILES = ("", PROFILE_FAPI_CIBA)
FAPI_ALGS = ("PS256", "ES256")
FAPI_AUTH_METHODS = (AUTH_PRIVATE_KEY_JWT, *MTLS_AUTH_METHODS)
#: FAPI 1 Advanced §5.2.2-5/6: minimum key sizes.
FAPI_MIN_RSA_BITS = 2048
FAPI_EC_CURVES = ("P-256",)
#: FAPI-CIBA §5.2.2: nbf and exp of a signed request at most 60 minutes apart.
FAPI_REQUEST_OBJECT_MAX_LIFETIME = 3600
