"""System checks: configuration mistakes that would break CIBA or weaken it in production.

Ids are stable (``ciba.E0xx`` errors, ``ciba.W0xx`` warnings, all in ``codes``) and every hint
names the exact setting to change. Only the checks in ``registrations`` touch the database, and
only as ``Tags.database`` checks: Django runs those in ``migrate`` and in ``check --database
default``, never in a plain ``check`` on a build machine.

The security profile (``CIBA["PROFILE"]``) never silently changes another setting: every
contradiction between the profile and a setting is an error here, at start-up. The narrowing
in ``ciba.profile`` at request time is only the safety net of a silenced check.

One module a subject; importing this package registers every check (``ciba.apps`` does, in
``ready()``):

- ``codes``: every id, once, in order.
- ``site_setup``: the OAuth application model, django-oauth-toolkit's settings, the Celery app.
- ``configuration``: ``settings.CIBA`` (names, import strings, values, rates, the signing-key
  keep, the poll state, the notifiers), with ``security_profile`` (the profile against the other
  settings) and ``sender_constraints`` (mTLS and DPoP).
- ``client_secrets``: the keyed client-secret hash and the cost of checking secrets.
- ``bounded_dependencies``: bounded waits on the cache and the database.
- ``workers``: the dispatch breaker, the sweeps, the slow lane, the broker, the task queues.
- ``user_code_budgets``: how many wrong user codes may be tried.
- ``user_protection``: the per-user caps and rate, the action at a cap, the subject types.
- ``identifiers``: the identifiers a ``login_hint`` may match, their normalisers, the phone
  region, and whether each field has an index.
- ``hint_tokens``: "show my code": the codes' lifetime and the issuer they are signed for.
- ``approval_levels``: authentication at approval (``APPROVAL_ACR``, the floors, the acr
  values discovery promises) and the passkey (WebAuthn) settings, with the RP ID deploy warning.
- ``registrations``: registered clients and signing keys (the database checks).
- ``discovery_paths``: the site's URLconf serves RFC 8414 metadata where the issuer puts it.
- ``dynamic_registration``: the settings of dynamic client registration and the
  open-registration deploy warning.
- ``deploy``: development conveniences that must not reach production.

A check goes in the module of its subject, registered with ``@checks.register``, its id added
to ``codes.Codes``.
"""

from . import (  # noqa: F401  (each registers its checks)
    approval_levels,
    bounded_dependencies,
    client_secrets,
    codes,
    configuration,
    deploy,
    discovery_paths,
    dynamic_registration,
    hint_tokens,
    identifiers,
    registrations,
    security_profile,
    sender_constraints,
    site_setup,
    user_code_budgets,
    user_protection,
    workers,
)
from .approval_levels import check_approval_levels, check_webauthn_rp_id
from .bounded_dependencies import check_bounded_dependencies, check_outage_options
from .client_secrets import check_client_secret_hashing, check_client_secret_hashing_deploy
from .codes import Codes
from .configuration import check_ciba_settings
from .deploy import check_deploy
from .discovery_paths import check_metadata_location
from .dynamic_registration import check_dynamic_registration, check_open_registration
from .hint_tokens import check_hint_tokens
from .identifiers import check_identifier_indexes, check_identifiers
from .registrations import check_registered_clients, check_signing_keys
from .site_setup import check_application_model, check_celery, check_oauth2_provider
from .user_code_budgets import check_user_code_budgets
from .user_protection import check_subject_types, check_user_limits
from .workers import check_broker_hardening, check_task_queues, check_worker_settings

__all__ = [
    "Codes",
    "check_application_model",
    "check_approval_levels",
    "check_bounded_dependencies",
    "check_broker_hardening",
    "check_celery",
    "check_ciba_settings",
    "check_client_secret_hashing",
    "check_client_secret_hashing_deploy",
    "check_deploy",
    "check_dynamic_registration",
    "check_hint_tokens",
    "check_identifier_indexes",
    "check_identifiers",
    "check_metadata_location",
    "check_open_registration",
    "check_oauth2_provider",
    "check_outage_options",
    "check_registered_clients",
    "check_signing_keys",
    "check_subject_types",
    "check_user_code_budgets",
    "check_user_limits",
    "check_task_queues",
    "check_webauthn_rp_id",
    "check_worker_settings",
]
