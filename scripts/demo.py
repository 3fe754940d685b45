"""The main job: migrate, start a real worker, run `doc-triage` on a sample text, print the
result, stop the worker. Run through `make demo`, which first makes sure of the venv,
Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# In the project, not the temp dir: each demo overwrites the last, `make clean` removes it.
LOG = ROOT / ".hive" / "demo" / "worker.log"

SAMPLE = (
    "Hi team, the new release is great and customers love the faster search. "
    "Reach me at dana.smith@example.com or +1 415-555-0100 if anything breaks. "
    "One customer paid with card 4111 1111 1111 1111 from 192.168.10.24, and her SSN "
    "123-45-6789 was pasted into the ticket by mistake. Support was not bad this week, "
    "but the billing page is slow and confusing. We should fix billing before the launch."
)


def main() -> int:
    from hive import Client
    from hive.db.migrate import upgrade
    from hive.errors import HiveError

    try:
        upgrade()
    except HiveError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    log = LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"demo: starting a worker (log: {log.relative_to(ROOT)})", file=sys.stderr)
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "hive.cli", "worker", "--concurrency", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if not _wait_ready(worker, log):
            print(f"demo: the worker did not start:\n{log.read_text()[-2000:]}", file=sys.stderr)
            return 1
        client = Client()
        run = client.submit("doc-triage", {"text": SAMPLE})
        print(f"demo: submitted run {run.id}", file=sys.stderr)
        output = run.wait(timeout=60)
        view = client.get(run.id)
        for step in view.steps:
            took = (step.finished_at - step.started_at).total_seconds() * 1000
            print(f"demo:   {step.step_id:<10} {step.status:<10} {took:6.1f} ms", file=sys.stderr)
        print(json.dumps(output, indent=2))
        return 0
    except HiveError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except TimeoutError as exc:  # Run.wait's: the worker never finished the run
        tail = log.read_text(errors="replace")[-2000:]
        print(f"demo: {exc}; the worker's log ends:\n{tail}", file=sys.stderr)
        return 1
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        print("demo: worker stopped", file=sys.stderr)


def _wait_ready(worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            return False
        if "ready." in log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    sys.exit(main())
