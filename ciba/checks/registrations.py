"""What the database holds: registered clients and this server's signing keys.

These are the only checks that touch the database, and only as ``Tags.database`` checks: Django
runs them in ``migrate`` and in ``check --database default``, never in a plain ``check`` on a
build machine. A client is judged by ``ciba.registration_rules``, as ``clean()`` and the
endpoints judge it, and the key set by what it can sign.
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import DatabaseError
from oauth2_provider import models as dot_models

from .. import constants, profile, registration_rules, signing
from ..conf import ciba_settings
from ..models import SigningKey
from .codes import Codes
from .values import is_number

#: How many clients a database check names (the rest are counted).
LISTED_CLIENTS = 10


@checks.register(checks.Tags.database)
def check_registered_clients(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Clients saved before their registration was validated (fixtures, ``QuerySet.update()``,
    older versions, or before the profile was switched on) that register CIBA but cannot use
    it: they get ``unauthorized_client``. What the profile forbids is an error of its own
    (``ciba.E032``); everything else a warning (``ciba.W005``), so no reason is reported twice."""
    if not databases:
        return []
    model = dot_models.get_application_model()
    try:
        registered = list(model._default_manager.exclude(backchannel_token_delivery_mode="")[:10_000])
        with_id_token_alg = list(model._default_manager.exclude(id_token_signed_response_alg="")[:10_000])
        available = set(signing.id_token_algs_available())
    except DatabaseError:
        return []  # not migrated yet
    messages: list[checks.CheckMessage] = []
    contradicting: list[tuple[str, list[str]]] = []
    broken: list[tuple[str, list[str]]] = []
    for client in registered:
        found = list(registration_rules.problems(client, blocking_only=True))
        by_profile = [problem for problem in found if problem.by_profile]
        # A field the profile faults is reported once, by the profile's error (a push client
        # under FAPI-CIBA: not also "its token delivery mode is not supported").
        faulted = {problem.field for problem in by_profile}
        others = [problem for problem in found if not problem.by_profile and problem.field not in faulted]
        if by_profile:
            contradicting.append((client.client_id, [problem.refusal for problem in by_profile]))
        if others:
            broken.append((client.client_id, [problem.refusal for problem in others]))
    if contradicting:
        messages.append(
            checks.Error(
                f"{len(contradicting)} CIBA client(s) contradict the {ciba_settings.raw('PROFILE')} profile, "
                f"so they cannot use CIBA (they get unauthorized_client): {_listed(contradicting)}.",
                hint="Open each in the admin: the form shows the profile's rules next to the fields, and "
                "saving it names what to change.",
                id=Codes.CLIENTS_CONTRADICT_PROFILE,
            )
        )
    if broken:
        messages.append(
            checks.Warning(
                f"{len(broken)} client(s) register CIBA but cannot use it (they get unauthorized_client): "
                f"{_listed(broken)}.",
                hint="Open each in the admin and save it: the form says what to fix (for example an ID token "
                "signing algorithm, usually RS256).",
                id=Codes.CLIENTS_CANNOT_USE_CIBA,
            )
        )
    unsignable = [
        (client.client_id, [f"{client.id_token_signed_response_alg} ID tokens"])
        for client in with_id_token_alg
        if client.id_token_signed_response_alg not in available
    ]
    if unsignable:
        messages.append(
            checks.Error(
                f"{len(unsignable)} client(s) registered an ID-token signing algorithm no active signing key "
                f"can produce, so their token requests fail: {_listed(unsignable)}.",
                hint="Add a key of the type the algorithm needs: manage.py ciba_keys add --type rsa for "
                "RS256 and PS256, manage.py ciba_keys add --type ec for ES256 (or ciba_keys activate "
                "--type ... if one waits as next).",
                id=Codes.CLIENT_ID_TOKEN_ALG_UNAVAILABLE,
            )
        )
    return messages


@checks.register(checks.Tags.database)
def check_signing_keys(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """This server's key set (``manage.py ciba_keys``): under FAPI-CIBA it must be able to sign
    PS256 or ES256 (FAPI 1 Advanced §8.6; DOT's ``OIDC_RSA_PRIVATE_KEY`` signs RS256 only), and
    once it is in use its retired keys should outlive the ID tokens presented as hints."""
    if not databases:
        return []
    try:
        available = signing.id_token_algs_available()
        in_use = SigningKey.objects.exists()
    except DatabaseError:
        return []  # not migrated yet
    messages: list[checks.CheckMessage] = []
    if profile.fapi() and not set(available) & set(constants.FAPI_ALGS):
        messages.append(
            checks.Error(
                "The FAPI-CIBA profile signs ID tokens with PS256 or ES256, but no active signing key can "
                "produce either, so every token request would fail.",
                hint="Run manage.py ciba_keys add --type rsa (PS256) or manage.py ciba_keys add --type ec "
                "(ES256).",
                id=Codes.NO_FAPI_SIGNING_KEY,
            )
        )
    keep = ciba_settings.raw("SIGNING_KEY_RETIRED_KEEP_SECONDS")
    hint_age = ciba_settings.raw("ID_TOKEN_HINT_MAX_AGE")
    # Only keys of the key set are ever pruned; DOT's keys stay published as long as configured.
    if in_use and is_number(keep) and is_number(hint_age) and keep < hint_age:
        messages.append(
            checks.Warning(
                f"Retired signing keys are pruned after {keep} s, but ID tokens are valid id_token_hint "
                f"values for {hint_age} s past their expiry: hints signed by a pruned key are refused "
                "earlier than ID_TOKEN_HINT_MAX_AGE allows.",
                hint=f'Set CIBA["SIGNING_KEY_RETIRED_KEEP_SECONDS"] to at least {hint_age} '
                '(CIBA["ID_TOKEN_HINT_MAX_AGE"]) plus the ID tokens\' lifetime, or lower '
                "ID_TOKEN_HINT_MAX_AGE.",
                id=Codes.SIGNING_KEY_KEEP_SHORT,
            )
        )
    return messages


def _listed(clients: list[tuple[str, list[str]]]) -> str:
    listed = "; ".join(
        f"{client_id}: {', '.join(reasons)}" for client_id, reasons in clients[:LISTED_CLIENTS]
    )
    more = f" (and {len(clients) - LISTED_CLIENTS} more)" if len(clients) > LISTED_CLIENTS else ""
    return listed + more
