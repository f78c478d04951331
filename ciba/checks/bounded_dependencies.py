"""Bounded waits on the cache and the database (``ciba.outages.BoundedRedisCache``, ``ciba.db``).

A hung Redis or PostgreSQL must not hold web workers: the bounds of the bounded backends must be
numbers (0 turns a bound off), and at deploy a default Redis cache or a PostgreSQL database that
nothing bounds is a warning.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .codes import Codes
from .values import is_number

_BOUNDED_CACHE = "ciba.outages.BoundedRedisCache"


_REDIS_CACHES = ("django.core.cache.backends.redis.RedisCache", _BOUNDED_CACHE)


_BOUNDED_DATABASE = "ciba.db"


#: The OPTIONS of the bounded backends that must be numbers of 0 or more.
_OUTAGE_OPTIONS = {
    _BOUNDED_CACHE: ("socket_connect_timeout", "socket_timeout", "retries", "breaker_seconds"),
    _BOUNDED_DATABASE: ("query_timeout", "breaker_seconds", "health_check_idle_seconds"),
}


@checks.register()
def check_outage_options(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The bounds of ``BoundedRedisCache`` and the ``ciba.db`` engine are numbers (0: off)."""
    messages: list[checks.CheckMessage] = []
    configured = [("CACHES", alias, c.get("BACKEND", ""), c) for alias, c in settings.CACHES.items()]
    configured += [("DATABASES", alias, d.get("ENGINE", ""), d) for alias, d in settings.DATABASES.items()]
    for setting, alias, backend, config in configured:
        options = config.get("OPTIONS") or {}
        for name in _OUTAGE_OPTIONS.get(backend, ()):
            value = options.get(name, 0)
            if not is_number(value) or not value >= 0:
                messages.append(
                    checks.Error(
                        f'{setting}["{alias}"]["OPTIONS"]["{name}"] is {value!r}: a dependency that hangs '
                        "would not be bounded.",
                        hint="Use a number of seconds of 0 or more (0 turns the bound off); "
                        "docs/deployment.md, Timeouts and outages.",
                        id=Codes.OUTAGE_OPTIONS,
                    )
                )
    return messages


@checks.register(checks.Tags.security, deploy=True)
def check_bounded_dependencies(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A hung Redis or PostgreSQL must not hold web workers: warn where nothing bounds the wait."""
    messages: list[checks.CheckMessage] = []
    cache = settings.CACHES.get("default", {})
    options = cache.get("OPTIONS") or {}
    if cache.get("BACKEND") == _REDIS_CACHES[0] and not options.get("socket_timeout"):
        messages.append(
            checks.Warning(
                "The default cache is Django's Redis cache without a socket timeout: a hung Redis holds "
                "every web request that touches the cache (client authentication does) until the "
                "operating system gives up, and redis-py retries each command three times.",
                hint=f'Use "BACKEND": "{_BOUNDED_CACHE}" (timeouts, no retries, a breaker), or set '
                'OPTIONS "socket_connect_timeout", "socket_timeout" and "retry".',
                id=Codes.UNBOUNDED_CACHE,
            )
        )
    for alias, database in settings.DATABASES.items():
        engine = database.get("ENGINE", "")
        if engine == "django.db.backends.postgresql" or (
            engine == _BOUNDED_DATABASE and not (database.get("OPTIONS") or {}).get("query_timeout", 1)
        ):
            messages.append(
                checks.Warning(
                    f'DATABASES["{alias}"] does not bound the wait for PostgreSQL: a hung database server '
                    "(or a network path that swallows packets) holds web workers without end, fast lane "
                    "included.",
                    hint=f'Use "ENGINE": "{_BOUNDED_DATABASE}" with a "query_timeout" and libpq\'s '
                    '"connect_timeout" in OPTIONS (example_project/env.py sets both).',
                    id=Codes.UNBOUNDED_DATABASE,
                )
            )
    return messages
