"""Create N pending CIBA requests for the demo poll client (run with the benchmark's environment).

python -m bench.seed [--replace] N OUTPUT.json

``--replace`` first deletes every CIBA request, so exactly N are pending.

Rows are bulk-inserted; each is then recorded in the configured poll state, as the
backchannel endpoint does after its commit.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta


def main() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from oauth2_provider.models import get_application_model

    from ciba.models import AuthenticationRequest
    from ciba.polling import poll_state

    args = sys.argv[1:]
    replace = "--replace" in args
    count, output = (int(args[-2]), args[-1])
    if replace:
        AuthenticationRequest.objects.all().delete()
    client = get_application_model().objects.get(client_id="demo-poll")
    user = get_user_model().objects.get(username="alice")
    now = timezone.now()
    rows = [
        AuthenticationRequest(
            client=client,
            user=user,
            hint_kind="login_hint",
            scope="openid",
            binding_message="BENCH",
            expires_at=now + timedelta(hours=1),
            interval=5,
        )
        for _ in range(count)
    ]
    AuthenticationRequest.objects.bulk_create(rows, batch_size=1000)
    store = poll_state()
    for row in rows:
        store.track(row)
    with open(output, "w") as handle:
        json.dump([row.auth_req_id for row in rows], handle)


if __name__ == "__main__":
    main()
