from ciba.backends.notifier_base import BaseNotifier


class CacheRecordingNotifier(BaseNotifier):
    """Records each notification in the shared (Redis) cache, where the test can see it."""

    def send_one(self, *, auth_request, target, context):
        from django.core.cache import cache

        cache.set(f"ciba-test-notified:{auth_request.auth_req_id}", auth_request.binding_message, 300)
