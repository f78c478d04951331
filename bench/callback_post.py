"""What sending one callback costs: a new connection each time, or a kept-alive one.

    python -m bench.callback_post                # http and https, CALLBACK_KEEP_ALIVE 0 and 4
    python -m bench.callback_post --count 500 --rounds 3

Each line times ``ciba.callbacks.send.post`` (the call a sender thread or a worker makes for
every ping and push) to a local keep-alive receiver (``bench.common.Receiver``), ``--count``
calls spaced ``--gap`` ms apart: over plain ``http``, and over ``https`` with a self-signed
P-256 certificate (``bench.compare.self_signed``, trusted through ``REQUESTS_CA_BUNDLE``), with
``CALLBACK_KEEP_ALIVE`` 0 (a connection, and a TLS handshake, per callback) and 4 (the
default: the thread's connection kept), the settings alternating within each round. The
receiver is Python's threading HTTP server on this machine, so the ``https`` figures include
its side of each handshake too, as a client's real endpoint would pay it. No database is used.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="callbacks per line")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gap", type=float, default=5.0, help="ms between two callbacks")
    args = parser.parse_args()

    from bench.compare import self_signed

    tls, certificate = self_signed(Path(tempfile.mkdtemp(prefix="ciba-callback-post-")))
    os.environ["REQUESTS_CA_BUNDLE"] = str(certificate)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.test import override_settings

    from bench.common import Receiver, percentiles
    from ciba.callbacks.send import post
    from ciba.outbound import close_kept_session

    receivers = {"http": Receiver(keep_alive=True), "https": Receiver(tls=tls, keep_alive=True)}
    for receiver in receivers.values():
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
    print(f"load average at start {os.getloadavg()}; {args.count} callbacks per line, {args.gap} ms apart")
    for round_ in range(1, args.rounds + 1):
        for scheme, receiver in receivers.items():
            for keep_alive in (0, 4):
                settings = {
                    "CALLBACK_ALLOW_HTTP": True,
                    "CALLBACK_ALLOW_PRIVATE_NETWORKS": True,
                    "CALLBACK_KEEP_ALIVE": keep_alive,
                }
                with override_settings(CIBA=settings):
                    close_kept_session()
                    times = []
                    for number in range(args.count):
                        started = time.perf_counter()
                        outcome = post(receiver.url, "notification-token", {"auth_req_id": f"r{number}"})
                        times.append((time.perf_counter() - started) * 1000)
                        if not outcome.delivered:
                            raise SystemExit(f"a callback was not delivered: {outcome}")
                        time.sleep(args.gap / 1000)
                    close_kept_session()
                found = percentiles(times)
                print(
                    f"round {round_}: {scheme:5} CALLBACK_KEEP_ALIVE {keep_alive}: "
                    f"p50 {found['p50']:6.2f} ms, p95 {found['p95']:6.2f} ms"
                )


if __name__ == "__main__":
    main()
