"""Finding the end-user a CIBA request is about (CIBA §7.1, §7.2 step 4)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q

from ..errors import InvalidRequest, UnknownUserId


class BaseUserResolver:
    """Interface: turn the one hint a client sent into an active user, or raise.

    ``resolve`` receives exactly one of the three hints (the endpoint enforces "one and only
    one", §7.1) and the authenticated client. It returns the user or raises
    ``ciba.errors.UnknownUserId`` (or ``ExpiredLoginHintToken`` / ``InvalidRequest`` for a
    bad ``login_hint_token``). Resolvers must not reveal through timing or error text
    whether an identifier exists beyond what ``unknown_user_id`` already says.
    """

    def resolve(
        self,
        *,
        client: Any,
        login_hint: str | None = None,
        login_hint_token: str | None = None,
        id_token_hint: str | None = None,
    ) -> AbstractBaseUser:
        if login_hint is not None:
            return self.resolve_login_hint(login_hint, client=client)
        if login_hint_token is not None:
            return self.resolve_login_hint_token(login_hint_token, client=client)
        if id_token_hint is not None:
            return self.resolve_id_token_hint(id_token_hint, client=client)
        raise InvalidRequest("One of login_hint, login_hint_token or id_token_hint is required.")

    def resolve_login_hint(self, login_hint: str, *, client: Any) -> AbstractBaseUser:
        raise UnknownUserId("login_hint is not accepted by this server.")

    def resolve_login_hint_token(self, login_hint_token: str, *, client: Any) -> AbstractBaseUser:
        raise UnknownUserId("login_hint_token is not accepted by this server.")

    def resolve_id_token_hint(self, id_token_hint: str, *, client: Any) -> AbstractBaseUser:
        raise UnknownUserId("id_token_hint is not accepted by this server.")


class UsernameOrEmailUserResolver(BaseUserResolver):
    """Default: a ``login_hint`` is the user's ``USERNAME_FIELD`` value or email address.

    Inactive users are treated as unknown: a disabled account must not receive
    authentication requests. An email shared by several accounts is ambiguous and so
    identifies nobody.
    """

    def resolve_login_hint(self, login_hint: str, *, client: Any) -> AbstractBaseUser:
        User = get_user_model()
        lookup = Q(**{User.USERNAME_FIELD: login_hint})
        email_field = User.get_email_field_name()
        if "@" in login_hint and any(f.name == email_field for f in User._meta.get_fields()):
            lookup |= Q(**{f"{email_field}__iexact": login_hint})
        users = list(User._default_manager.filter(lookup, is_active=True)[:2])
        if len(users) != 1:
            raise UnknownUserId("The login_hint does not identify a user of this server.")
        return users[0]
