"""Single-use JWT ids hold across processes whatever cache is configured."""

from __future__ import annotations

import time

from django.core import checks
from django.core.cache import cache
from django.test import override_settings

from ciba import checks as ciba_checks
from ciba.models import UsedJti
from ciba.replay import first_use

LOCAL_MEMORY = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "replay"}}


@override_settings(CACHES=LOCAL_MEMORY)
def test_a_replay_is_refused_even_by_a_process_that_never_saw_the_first_use(db):
    expires = time.time() + 120
    assert first_use("client_assertion", "kiosk", "jti-1", expires)
    cache.clear()  # another process, with a local-memory cache of its own
    assert not first_use("client_assertion", "kiosk", "jti-1", expires)
    assert UsedJti.objects.count() == 1
    assert first_use("client_assertion", "other-kiosk", "jti-1", expires)  # per issuer


@override_settings(CIBA={"REPLAY_STORE": "cache"})
def test_with_a_shared_cache_the_records_stay_in_it(db):
    assert first_use("request_object", "kiosk", "jti-2", time.time() + 60)
    assert not first_use("request_object", "kiosk", "jti-2", time.time() + 60)
    assert not UsedJti.objects.exists()


def test_check_deploy_says_when_the_cache_is_per_process(settings):
    settings.CACHES = LOCAL_MEMORY  # what the fast tier uses; the production tier uses Redis
    messages = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert "ciba.W007" in [m.id for m in messages]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}
    }
    assert "ciba.W007" not in [m.id for m in ciba_checks.check_deploy()]
