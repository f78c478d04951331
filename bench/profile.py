"""Where a gunicorn worker spends its time under load: py-spy samples, summarised.

    python -m bench.profile backchannel      # or: poll, poll-database
    python -m bench.profile poll --seconds 10

The example project runs on gunicorn (2 sync workers) with PostgreSQL and Redis, as in
bench.load; wrk loads one endpoint while py-spy samples one worker (``--nonblocking``,
500 Hz). Written to ``docs/performance/profile-<scenario>.txt``: for each function (file,
not line), the share of samples in which it was on the stack (inclusive) and at the top
(self). Waiting for PostgreSQL or Redis shows up as psycopg's ``wait`` and redis-py's
socket reads. Needs wrk and py-spy (``pip install py-spy``; ptrace must be allowed).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.common import RESULTS, ROOT, environment, flush_redis, gunicorn, manage, prepare_database
from bench.load import GRANT, basic, wrk

FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def summarise(raw: Path, top: int) -> str:
    total = 0
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():  # a frame's name broken over lines (a multi-line string's repr)
            continue
        n = int(count)
        total += n
        frames = [_label(f) for f in stack.split(";")]
        for label in set(frames):
            inclusive[label] += n
        own[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive  self  function (file)"]
    for label, n in inclusive.most_common(top):
        if "gunicorn/" in label or "runpy" in label:
            continue
        lines.append(f"{100 * n / total:8.1f}% {100 * own[label] / total:5.1f}%  {label}")
    return "\n".join(lines) + "\n"


def _label(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"].split("site-packages/")[-1]
    return f"{match['name']} ({file})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=["backchannel", "poll", "poll-database"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    here = str(Path(sys.executable).parent)  # py-spy installed into this virtualenv
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=here)
    if shutil.which("wrk") is None or py_spy is None:
        sys.exit("bench.profile needs wrk (apt-get install wrk) and py-spy (pip install py-spy)")

    database = args.scenario == "poll-database"
    env = environment(args.port, CIBA_POLL_STATE_REDIS_URL="off" if database else "")
    prepare_database(env)
    flush_redis(env["CACHE_URL"], env["CELERY_BROKER_URL"])
    demo = json.loads(manage(env, "ciba_demo_data", "--json"))
    authorization = basic(demo["clients"]["poll"])
    if args.scenario == "backchannel":
        path, bodies = (
            "/o/backchannel-authentication/",
            [f"scope=openid&login_hint=alice&binding_message=P{i}" for i in range(1000)],
        )
    else:
        with tempfile.NamedTemporaryFile(suffix=".json") as ids_file:
            subprocess.run(
                [sys.executable, "-m", "bench.seed", "--replace", "1000", ids_file.name],
                cwd=ROOT,
                env=env,
                check=True,
            )
            ids = json.load(open(ids_file.name))
        path, bodies = "/o/token/", [f"grant_type={GRANT}&auth_req_id={i}" for i in ids]

    with gunicorn(env, args.port, 2) as base, tempfile.TemporaryDirectory() as tmp:
        wrk(base, path, authorization, bodies, 3, args.connections)  # warm-up
        workers = subprocess.run(
            ["pgrep", "-f", f"gunicorn example_project.wsgi.*127.0.0.1:{args.port}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        worker = max(workers, key=int)  # a worker, not the arbiter (started first)
        raw = Path(tmp) / "samples.txt"
        load: dict = {}
        loader = threading.Thread(
            target=lambda: load.update(
                wrk(base, path, authorization, bodies, args.seconds + 2, args.connections)
            )
        )
        loader.start()
        subprocess.run(
            [py_spy, "record", "--nonblocking", "-p", worker, "-d", str(args.seconds), "-r", "500"]
            + ["-f", "raw", "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        loader.join()
        report = (
            f"python -m bench.profile {' '.join(sys.argv[1:])}\n"
            f"{path} at {load['requests_per_second']} requests/s (wrk -c{args.connections}), "
            f"answers {load['answers']}; py-spy on one of 2 gunicorn workers (sampling slows it: "
            "bench.load has the throughput)\n\n" + summarise(raw, args.top)
        )
    out = RESULTS / f"profile-{args.scenario}.txt"
    out.write_text(report)
    print(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
