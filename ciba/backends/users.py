"""Finding the end-user a CIBA request is about (CIBA §7.1, §7.2 step 4)."""

from __future__ import annotations

import inspect
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import identify_hasher
from django.core.exceptions import ValidationError

from .. import hint_tokens, identifiers, profile, subjects, user_limits
from ..conf import ciba_settings
from ..constants import ASYMMETRIC_JWS_ALGORITHMS, ID_TOKEN_SIGNING_ALGS
from ..endpoints import audiences, issuer
from ..errors import ExpiredLoginHintToken, InvalidRequest, UnknownUserId
from ..jose import LEEWAY, JoseError, client_keys, header_of, verify
from ..signing import kty_for_alg, verification_keys


class BaseUserResolver:
    """Interface: turn the one hint a client sent into an active user, or raise.

    ``resolve`` receives exactly one of the three hints (the endpoint enforces "one and only
    one", §7.1), the authenticated client and the HTTP request (``http_request``). It returns the user or
    raises ``ciba.errors.UnknownUserId`` (or ``ExpiredLoginHintToken`` / ``InvalidRequest``
    for a bad ``login_hint_token``). Resolvers must not reveal through error text whether an
    identifier exists beyond what ``unknown_user_id`` already says.
    """

    def resolve(
        self,
        *,
        client: Any,
        http_request: Any,
        login_hint: str | None = None,
        login_hint_token: str | None = None,
        id_token_hint: str | None = None,
    ) -> AbstractBaseUser:
        if login_hint is not None:
            return self.resolve_login_hint(login_hint, client=client, http_request=http_request)
        if login_hint_token is not None:
            return self.resolve_login_hint_token(login_hint_token, client=client, http_request=http_request)
        if id_token_hint is not None:
            return self.resolve_id_token_hint(id_token_hint, client=client, http_request=http_request)
        raise InvalidRequest("One of login_hint, login_hint_token or id_token_hint is required.")

    def resolve_login_hint(self, login_hint: str, *, client: Any, http_request: Any) -> AbstractBaseUser:
        raise UnknownUserId("login_hint is not accepted by this server.")

    def resolve_login_hint_token(
        self, login_hint_token: str, *, client: Any, http_request: Any
    ) -> AbstractBaseUser:
        raise UnknownUserId("login_hint_token is not accepted by this server.")

    def resolve_id_token_hint(
        self, id_token_hint: str, *, client: Any, http_request: Any
    ) -> AbstractBaseUser:
        raise UnknownUserId("id_token_hint is not accepted by this server.")


class UsernameOrEmailUserResolver(BaseUserResolver):
    """Default resolver; the policy each hint kind follows is documented in docs/security.md.

    - ``login_hint``: one of the identifiers ``LOGIN_HINT_IDENTIFIERS`` configures
      (``ciba.identifiers``; by default the user's ``USERNAME_FIELD`` value or their e-mail
      address, any case), each normalised as configured (an e-mail lower-cased, a phone number
      to E.164 in ``PHONE_NUMBER_REGION``, an IBAN with its check digits verified).
    - ``id_token_hint``: an ID token this server signed for this client (``aud``, every
      member a string), with this server's ``iss``: with a key this server publishes
      (``ciba.signing``: RS256 or PS256 with an RSA key, ES256 with an EC key; a key that
      declares its ``alg`` only with that), or HS256 with this client's (unhashed) secret.
      Expired tokens are accepted, as §7.1 allows, for ``ID_TOKEN_HINT_MAX_AGE`` seconds past
      ``exp``; ``sub`` names the user as this client sees users (its pairwise ``sub`` for a
      pairwise client, ``ciba.subjects``).
    - ``login_hint_token``: a JWT the client signed with its registered keys, ``iss`` = the
      client id, ``aud`` naming this server, ``exp`` required (expired →
      ``expired_login_hint_token``); its ``sub`` is a ``sub`` this client was given (pairwise,
      or a site's own public one), else is resolved like a ``login_hint``.
    - Under the FAPI-CIBA profile both JWT hints must be PS256 or ES256 (FAPI 1 Advanced §8.6).

    Inactive users are unknown: a disabled account must not receive authentication
    requests. An identifier shared by several accounts (an e-mail address, a phone number) is
    ambiguous and so identifies nobody: ``unknown_user_id``, never a guess. The class keeps its
    name, which sites name in ``USER_RESOLVER_CLASS`` and subclass.
    """

    def resolve_login_hint(self, login_hint: str, *, client: Any, http_request: Any) -> AbstractBaseUser:
        """The one active user the configured identifiers find (one query, whatever the
        outcome: ``ciba.identifiers.find_user``); nobody, or more than one, is
        ``unknown_user_id``."""
        user = identifiers.find_user(login_hint, annotations=user_limits.block_annotation(client))
        if user is None:
            raise UnknownUserId("The login_hint does not identify a user of this server.")
        user_limits.keep_block_answer(user, client)  # the block list, asked in the same query
        return user

    def resolve_id_token_hint(
        self, id_token_hint: str, *, client: Any, http_request: Any
    ) -> AbstractBaseUser:
        keys: list[Any] = verification_keys()
        algorithms = _hint_algorithms(keys)
        if client.algorithm == "HS256" and client.client_secret and not _is_hashed(client.client_secret):
            keys, algorithms = [client.client_secret.encode()], ["HS256"]
        # Under FAPI-CIBA only PS256 and ES256 ID tokens are hints: the profile never issues
        # others, so an RS256 or HS256 one was not minted under its rules.
        algorithms = profile.jws_algs(algorithms)
        if not algorithms:
            raise InvalidRequest(
                "id_token_hint: no ID token this server signs is accepted under its profile."
            )
        try:
            claims = verify(
                id_token_hint,
                keys,
                algorithms=algorithms,
                audience=[client.client_id],
                audience_name="this client",  # an ID token's aud is the client it was issued to
                issuer=issuer(http_request),
                require=("iss", "sub", "aud", "exp"),
                verify_exp=False,
            )
        except JoseError as exc:
            raise InvalidRequest(f"id_token_hint: {exc}") from None
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not all(isinstance(member, str) for member in audience):
            raise InvalidRequest("id_token_hint: every aud member must be a string.")
        max_age = ciba_settings.ID_TOKEN_HINT_MAX_AGE
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise InvalidRequest("id_token_hint: exp must be a number.")
        if max_age is not None and exp + max_age + LEEWAY < time.time():
            raise InvalidRequest("id_token_hint: the ID token expired too long ago.")
        if "client" not in inspect.signature(self.user_for_subject).parameters:
            # A site's override written before pairwise subs (``user_for_subject(subject)``).
            return self.user_for_subject(str(claims["sub"]))
        return self.user_for_subject(str(claims["sub"]), client=client)

    def resolve_login_hint_token(
        self, login_hint_token: str, *, client: Any, http_request: Any
    ) -> AbstractBaseUser:
        if hint_tokens.is_own(login_hint_token, http_request):
            # "show my code": a token this server signed for the user, not the client's own.
            return hint_tokens.redeem(login_hint_token, http_request)
        accepted = profile.jws_algs(ASYMMETRIC_JWS_ALGORITHMS)
        try:
            alg = header_of(login_hint_token)["alg"]
            if alg not in accepted:
                # FAPI 1 Advanced §8.6 (under FAPI-CIBA): PS256 or ES256, as for every JWS.
                raise JoseError(f"must be signed with {' or '.join(accepted)}.")
            # The signature is checked before expiry, so that only a genuine token the
            # client signed earns the specific expired_login_hint_token error.
            claims = verify(
                login_hint_token,
                client_keys(client, kid=header_of(login_hint_token).get("kid")),
                algorithms=[alg],
                audience=audiences(http_request),
                issuer=client.client_id,
                require=("iss", "aud", "exp", "sub"),
                verify_exp=False,
            )
        except JoseError as exc:
            raise InvalidRequest(f"login_hint_token: {exc}") from None
        if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], (int, float)):
            raise InvalidRequest("login_hint_token: exp must be a number.")
        if claims["exp"] + LEEWAY < time.time():
            raise ExpiredLoginHintToken("The login_hint_token has expired.")
        if not isinstance(claims["sub"], str):
            raise InvalidRequest("login_hint_token: sub must be a string.")
        # A sub this client was given (its pairwise one, or a site's own public one) names
        # that user; a primary key does not (the client signs this token itself, and could
        # count through every account). Else the sub is read as a login_hint.
        user = subjects.user_for_subject(claims["sub"], client, allow_primary_key=False)
        if user is not None:
            return user
        return self.resolve_login_hint(claims["sub"], client=client, http_request=http_request)

    def user_for_subject(self, subject: str, *, client: Any = None) -> AbstractBaseUser:
        """The user an ID token's ``sub`` names, as ``client`` sees users
        (``ciba.subjects.user_for_subject``): a pairwise client's sector's identifier, a
        site's own public ``sub``, or DOT's, the user's primary key. Without a client (a
        caller of the old signature): the public reading."""
        user = subjects.user_for_subject(subject, client) if client is not None else _public_user(subject)
        if user is None:
            raise UnknownUserId("The id_token_hint does not identify a user of this server.")
        return user


def _public_user(subject: str) -> AbstractBaseUser | None:
    """The active user whose primary key ``subject`` is (DOT's public ``sub``)."""
    User = get_user_model()
    try:
        return User._default_manager.filter(pk=subject, is_active=True).first()
    except (ValueError, TypeError, ValidationError):
        return None


def _hint_algorithms(keys: list[dict[str, Any]]) -> list[str]:
    """The ID-token algorithms some key of ``keys`` can verify (RS256 when there is none)."""
    usable = set()
    for key in keys:
        for alg in ID_TOKEN_SIGNING_ALGS:
            if key.get("alg", alg) == alg and key.get("kty") == kty_for_alg(alg):
                usable.add(alg)
    return [alg for alg in ID_TOKEN_SIGNING_ALGS if alg in usable] or ["RS256"]


def _is_hashed(secret: str) -> bool:
    try:
        identify_hasher(secret)
    except ValueError:
        return False
    return True
