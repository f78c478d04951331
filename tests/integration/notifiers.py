from ciba.backends.notifiers import BaseNotifier


class CacheRecordingNotifier(BaseNotifier):
    """Records each notification in the shared (Redis) cache, where the test can see it."""

    def notify(self, request, devices):
        from django.core.cache import cache

        cache.set(f"ciba-test-notified:{request.auth_req_id}", request.binding_message, 300)
