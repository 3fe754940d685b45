"""``python -m bench.api [--n N] [--clients P] [--slices S] [--workers 1,2] [--json]``: the
HTTP API (``hive api``) against direct ``hive.Client`` calls.

For each ``--workers`` count W, in one run: N submits of a one-step run (bench-echo) from P
client processes calling ``Client.submit`` directly, and the same N submits from P
processes through ``POST /v1/runs`` of a real ``hive api --workers W``, twice: with one
keep-alive httpx client each (the figure issue 12's target is read on), and with one
keep-alive stdlib ``http.client`` connection each (a lean client, as a producer in another
language would bring its own). Each part is followed by reading every run back
(``Client.get``, or ``GET /v1/runs/{id}``). Direct and the two API modes take S turns of
N/S submits each, alternating, so that a drift in the machine's load falls on all alike; a
rate is the calls over the turns' summed wall time. No worker runs: a submit stores the run
and sends its first step to Redis, nothing executes it, so the figures are of submitting and
reading alone. Each turn starts from empty run tables and an empty queue.

Each part's CPU is read from ``/proc`` (:mod:`bench.proc_cpu`) by role: the client
processes, the API server's processes, the PostgreSQL backends of the bench's database and
the Redis server, reported in milliseconds per call: what a submit costs the client and
what it costs the server. Their ratio over all processes (direct against API) is what the
submit ratio tends to when the machine's cores are the limit. CPU per call rises with the
machine's load (shared cores and caches): compare figures of one run, or alternated runs.

The API runs as a producer would use it: an API key of one tenant (``producer``), its rate
limit on (set far above what the bench reaches, so it is spent and never refuses) and its
cap on runs in flight on (the default, 10 000). Authentication and rate limiting are also
timed on their own, in this process, as the API calls them: ``service.authenticate`` on a
key, then ``service.admit_request`` for its tenant. Progress goes to stderr; the report (or
one JSON object with ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.api_clients import TENANT, Phase, run_phase
from bench.proc_cpu import ROLES, CpuWatch
from bench.setup import (
    DEFAULT_REDIS_DB,
    PG_ADMIN_URL,
    ROOT,
    BrokerClaim,
    bench_env,
    build_database,
    database_url,
    free_port,
    install_env,
    load_average,
    machine_info,
    write_pipelines,
)
from bench.stats import p50_p99_ms

DATABASE = "hive_benchapi"
# Far above what the bench reaches: every request spends the limit, none is refused.
_RATE = {"HIVE_API_REQUESTS_PER_S": "1000000", "HIVE_API_REQUEST_BURST": "1000000"}


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class ApiServer:
    """``hive api --workers W`` on a free loopback port, in its own process group."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        args = [
            sys.executable, "-m", "hive.cli", "api",
            "--port", str(self.port), "--workers", str(workers), "--loglevel", "WARNING",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until ``/readyz`` answers 200 (PostgreSQL and Redis reachable)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hive api exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"hive api not ready after {timeout_s}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group (uvicorn and its workers), then SIGKILL what is left."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout_s)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)
        self._log.close()


def make_key() -> str:
    """A producer key of the bench's tenant, made as ``hive keys create`` makes one."""
    from hive import service
    from hive.service import Caller, Role
    from hive.settings import get_settings

    made = service.create_api_key(
        get_settings(), Caller(None, Role.OPERATOR), tenant=TENANT, role="producer"
    )
    return made.key


def empty_tables() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url(DATABASE), pool_size=1)
    with engine.begin() as db:
        db.execute(text("TRUNCATE runs, step_runs, step_attempts, events CASCADE"))
        db.execute(text("ANALYZE"))
    engine.dispose()


def auth_cost(key: str, samples: int) -> dict[str, float]:
    """What the API spends on a request before its route: the key checked against
    PostgreSQL, then a unit of the tenant's rate taken in Redis; each timed, p50/p99 in ms."""
    from hive import service
    from hive.settings import get_settings

    settings = get_settings()
    auth: list[float] = []
    admit: list[float] = []
    both: list[float] = []
    for _ in range(samples):
        began = time.monotonic()
        who = service.authenticate(settings, key)
        checked = time.monotonic()
        service.admit_request(settings, who.caller)
        done = time.monotonic()
        auth.append(checked - began)
        admit.append(done - checked)
        both.append(done - began)
    figures: dict[str, float] = {"samples": samples}
    for name, values in (("auth", auth), ("rate_limit", admit), ("auth_and_rate_limit", both)):
        figures[f"{name}_p50_ms"], figures[f"{name}_p99_ms"] = p50_p99_ms(values)
    return figures


def http_floor(base_url: str, samples: int) -> tuple[float, float]:
    """p50/p99 of ``GET /healthz`` (no key, no database), one keep-alive client: what
    HTTP, uvicorn and the middleware cost a request by themselves."""
    times = []
    with httpx.Client(base_url=base_url) as http:
        for _ in range(samples):
            began = time.monotonic()
            http.get("/healthz").raise_for_status()
            times.append(time.monotonic() - began)
    return p50_p99_ms(times)


# Mode of the client processes -> prefix of its figures ("api" is the httpx client's, the
# name the figures had before the lean client came).
MODES = {"direct": "direct", "httpx": "api", "lean": "lean"}


def _part_figures(prefix: str, phase: Phase) -> dict[str, Any]:
    submit_p50, submit_p99 = p50_p99_ms(phase.submits.calls)
    read_p50, read_p99 = p50_p99_ms(phase.reads.calls)
    return {
        f"{prefix}_submits_per_s": phase.submits.rate,
        f"{prefix}_submit_p50_ms": submit_p50,
        f"{prefix}_submit_p99_ms": submit_p99,
        f"{prefix}_reads_per_s": phase.reads.rate,
        f"{prefix}_read_p50_ms": read_p50,
        f"{prefix}_read_p99_ms": read_p99,
        f"{prefix}_submit_cpu_ms": phase.submits.cpu_ms_per_call(),
        f"{prefix}_read_cpu_ms": phase.reads.cpu_ms_per_call(),
    }


def compare(
    args: argparse.Namespace, broker: BrokerClaim, env: dict[str, str], key: str, tmp: Path
) -> list[dict[str, Any]]:
    """Per ``--workers`` count: direct submits and reads, then the same through the API, in
    ``--slices`` turns each, so that a drift in the machine's load falls on both alike."""
    rounds = []
    share = args.n // args.slices
    for workers in args.workers:
        server = ApiServer(env, workers, tmp / f"api-{workers}.log")
        phases: dict[str, list[Phase]] = {mode: [] for mode in args.modes}
        watch = CpuWatch(PG_ADMIN_URL, DATABASE, broker.client, server.proc.pid)
        try:
            server.wait_ready()
            for turn in range(1, args.slices + 1):
                for mode, slices in phases.items():
                    broker.reset()
                    empty_tables()
                    how = "direct" if mode == "direct" else f"hive api --workers {workers}, {mode}"
                    say(f"{how}, turn {turn}/{args.slices}: {share} submits, then reads")
                    slices.append(run_phase(args.clients, share, mode, server.base_url, key, watch))
            floor = http_floor(server.base_url, args.auth_samples)
            errors = [line for line in server.log_tail(20000).splitlines() if "ERROR" in line]
        finally:
            watch.close()
            server.stop()
        figures: dict[str, Any] = {"api_workers": workers}
        for mode, slices in phases.items():
            figures |= _part_figures(MODES[mode], Phase.merged(slices))
        figures["submit_ratio"] = figures["api_submits_per_s"] / figures["direct_submits_per_s"]
        figures["read_ratio"] = figures["api_reads_per_s"] / figures["direct_reads_per_s"]
        if "lean" in phases:
            figures["lean_submit_ratio"] = (
                figures["lean_submits_per_s"] / figures["direct_submits_per_s"]
            )
            figures["lean_read_ratio"] = figures["lean_reads_per_s"] / figures["direct_reads_per_s"]
        # What the submit ratio tends to when the machine's cores are the limit: a direct
        # submit's CPU over all processes against an API submit's.
        direct_cpu = figures["direct_submit_cpu_ms"]["all"]
        for mode in phases:
            if mode != "direct":
                prefix = MODES[mode]
                over_http = figures[f"{prefix}_submit_cpu_ms"]["all"]
                figures[f"{prefix}_cpu_ceiling_ratio"] = direct_cpu / over_http
        figures["healthz_p50_ms"], figures["healthz_p99_ms"] = floor
        figures["api_errors"] = errors[-10:]
        rounds.append(figures)
    return rounds


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    best = max(r["rounds"], key=lambda one: one["submit_ratio"])
    checks = {
        f"API submits >= 70% of direct, httpx clients (best: --workers {best['api_workers']})": (
            best["submit_ratio"], ">=", 0.70,
        ),
        "authentication + rate limiting p50 < 1 ms": (
            r["auth"]["auth_and_rate_limit_p50_ms"], "<", 1.0,
        ),
    }  # fmt: skip
    if all("lean_submit_ratio" in one for one in r["rounds"]):
        lean = max(r["rounds"], key=lambda one: one["lean_submit_ratio"])
        name = f"API submits >= 70% of direct, lean client (best: --workers {lean['api_workers']})"
        checks[name] = (lean["lean_submit_ratio"], ">=", 0.70)
    return {
        name: {"value": value, "target": f"{op} {bound:.3g}", "met": _holds(value, op, bound)}
        for name, (value, op, bound) in checks.items()
    }


def _holds(value: float, op: str, bound: float) -> bool:
    return value >= bound if op == ">=" else value < bound


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"machine: {m['nproc']} x {m['cpu_model']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}, Redis {m['redis_server']}",
        f"n = {r['n']} submits per phase ({r['slices']} turns each, direct and API "
        f"alternating) from {r['clients']} client processes; no worker "
        f"(submit = store the run + send its first step); 1-min load average before/after "
        f"{m['loadavg_1m_before']:.2f} / {m['loadavg_1m_after']:.2f}",
    ]
    for one in r["rounds"]:
        lines.append(f"hive api --workers {one['api_workers']}:")
        for prefix, label in (("api", "API, httpx"), ("lean", "API, lean")):
            if f"{prefix}_submits_per_s" not in one:
                continue
            ratio = "submit_ratio" if prefix == "api" else "lean_submit_ratio"
            reads = "read_ratio" if prefix == "api" else "lean_read_ratio"
            lines += [
                f"  {label}: submits/s {one[f'{prefix}_submits_per_s']:7.1f} against direct "
                f"{one['direct_submits_per_s']:7.1f}: ratio {one[ratio]:.2f}; reads/s "
                f"{one[f'{prefix}_reads_per_s']:7.1f} against {one['direct_reads_per_s']:7.1f}: "
                f"ratio {one[reads]:.2f}",
                f"    POST /v1/runs p50/p99 {one[f'{prefix}_submit_p50_ms']:6.2f} / "
                f"{one[f'{prefix}_submit_p99_ms']:6.2f} ms (direct "
                f"{one['direct_submit_p50_ms']:.2f} / {one['direct_submit_p99_ms']:.2f}); "
                f"GET /v1/runs/{{id}} {one[f'{prefix}_read_p50_ms']:6.2f} / "
                f"{one[f'{prefix}_read_p99_ms']:6.2f} ms (direct "
                f"{one['direct_read_p50_ms']:.2f} / {one['direct_read_p99_ms']:.2f})",
            ]
        lines.append(
            "  CPU-bound ceiling of the submit ratio (direct CPU / API CPU, all processes): "
            + ", ".join(
                f"{label} {one[f'{prefix}_cpu_ceiling_ratio']:.2f}"
                for prefix, label in (("api", "httpx"), ("lean", "lean"))
                if f"{prefix}_cpu_ceiling_ratio" in one
            )
        )
        lines.append("  CPU ms per call by process: " + " / ".join(ROLES) + " = all")
        for prefix, label in (("direct", "direct"), ("api", "API, httpx"), ("lean", "API, lean")):
            for part in ("submit", "read"):
                cpu = one.get(f"{prefix}_{part}_cpu_ms")
                if cpu is not None:
                    split = " / ".join(f"{cpu[role]:.2f}" for role in ROLES)
                    lines.append(f"    {label:11s} {part:6s} {split} = {cpu['all']:.2f}")
        lines.append(
            f"  GET /healthz (no key, no database) p50/p99 {one['healthz_p50_ms']:.2f} / "
            f"{one['healthz_p99_ms']:.2f} ms"
        )
        lines += [f"  server ERROR: {line}" for line in one["api_errors"]]
    a = r["auth"]
    lines += [
        f"auth + rate limit in-process ({a['samples']:.0f} calls): p50/p99 "
        f"{a['auth_and_rate_limit_p50_ms']:.3f} / {a['auth_and_rate_limit_p99_ms']:.3f} ms "
        f"(key check {a['auth_p50_ms']:.3f}, GCRA {a['rate_limit_p50_ms']:.3f} ms at p50)",
        "targets:",
    ]
    for name, t in r["targets"].items():
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"  {verdict:8s} {name}: {t['value']:.3f} (target {t['target']})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="submits per phase")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--slices", type=int, default=3, help="turns direct and API take, n/slices each"
    )
    parser.add_argument(
        "--workers",
        type=lambda text: [int(w) for w in text.split(",")],
        default=[1, 2],
        help="comma-separated `hive api --workers` counts to measure, one after another",
    )
    parser.add_argument(
        "--modes",
        type=lambda text: text.split(","),
        default=list(MODES),
        help="comma-separated client modes: direct (needed), httpx (needed), lean",
    )
    parser.add_argument("--auth-samples", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--skip-build",
        action="store_true",
        help=f"keep the {DATABASE} database (migrate and empty it) instead of re-creating it",
    )
    parser.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.slices < 1 or args.n < args.clients * args.slices:
        parser.error("--n must be at least --clients x --slices, both at least 1")
    if not {"direct", "httpx"} <= set(args.modes) <= set(MODES):
        parser.error(f"--modes takes direct, httpx and optionally lean, not {args.modes}")
    if not args.workers or min(args.workers) < 1 or args.auth_samples < 1:
        parser.error("--workers takes counts of at least 1; --auth-samples at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hive-bench-api-") as tmp:
        pipelines_dir = Path(tmp) / "pipelines"
        pipelines_dir.mkdir()
        write_pipelines(pipelines_dir)
        env = {**bench_env(pipelines_dir, args.redis_db, DATABASE), **_RATE}
        install_env(env)
        broker = BrokerClaim(args.redis_db)
        broker.claim()
        say(f"{'emptying' if args.skip_build else 'building'} database {DATABASE}")
        build_database(args.skip_build, DATABASE)
        load_before = load_average()
        try:
            key = make_key()
            rounds = compare(args, broker, env, key, Path(tmp))
            say(f"authentication + rate limiting, {args.auth_samples} calls in-process")
            auth = auth_cost(key, args.auth_samples)
        finally:
            broker.release()
        results: dict[str, Any] = {
            "n": args.n // args.slices * args.slices,
            "clients": args.clients,
            "slices": args.slices,
            "measured": "submits (run stored, first step sent to Redis; no worker) and reads",
            "rounds": rounds,
            "auth": auth,
            "machine": machine_info(broker.client),
        }
        results["machine"]["loadavg_1m_before"] = load_before
        results["machine"]["loadavg_1m_after"] = load_average()
        results["machine"]["fastapi"] = _version("fastapi")
        results["machine"]["uvicorn"] = _version("uvicorn")
        results["machine"]["httpx"] = _version("httpx")
        results["targets"] = targets(results)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
