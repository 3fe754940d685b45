"""How long one health sweep of many instances takes when some of them hang.

    python -m bench.health_sweep [--instances 200] [--hanging 40] [--timeout 5]

Registers the instances in a database of its own (``hive_bench_health``, dropped and made
again), each with a health URL on one loopback HTTP server that answers 200 at once or
never, and times :func:`hive.beat.health.sweep_services` in this process. Probes run
``HIVE_HEALTH_MAX_PROBES`` (100) at once, so while the hanging instances are fewer than that,
the sweep should take about one probe timeout, not one per hanging instance.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2
from psycopg2 import sql

from bench.setup import PG_ADMIN_URL, bench_env, install_env, load_average

DATABASE = "hive_bench_health"


def _server(stop: threading.Event) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/hang"):
                stop.wait(600)
                return
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # listen()'s backlog: 200 probes connect at once

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _fresh_database() -> str:
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"{base}/{DATABASE}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.health_sweep", description=__doc__)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--hanging", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    url = _fresh_database()
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(Path(tmp), 13)
        env |= {"HIVE_DATABASE_URL": url, "HIVE_HEALTH_TIMEOUT_S": str(args.timeout)}
        install_env(env)
        from hive.beat.health import sweep_services
        from hive.db.engine import dispose_engine
        from hive.db.migrate import upgrade
        from hive.service import OPERATOR, list_service_instances, register_service
        from hive.settings import get_settings

        upgrade(url)
        stop = threading.Event()
        server = _server(stop)
        host, port = server.server_address[:2]
        for n in range(args.instances):
            path = "hang" if n < args.hanging else "ok"
            register_service(
                get_settings(), OPERATOR, "bench", f"http://{host}:{port}/",
                health_url=f"http://{host}:{port}/{path}/{n}", instance_id=f"bench-{n}",
            )  # fmt: skip
        seconds = []
        reports = []
        load_before = load_average()
        outputs: dict[str, int] = {}
        for _ in range(args.rounds):
            started = time.perf_counter()
            reports.append(sweep_services().as_dict())
            seconds.append(round(time.perf_counter() - started, 3))
        for view in list_service_instances(get_settings(), OPERATOR, name="bench"):
            key = f"{view.status}: {view.last_check_output}"
            outputs[key] = outputs.get(key, 0) + 1
        stop.set()
        server.shutdown()
        dispose_engine()
    print(json.dumps({
        "instances": args.instances, "hanging": args.hanging, "timeout_s": args.timeout,
        "sweep_seconds": seconds, "last_report": reports[-1], "statuses": outputs,
        "loadavg_1m_before": load_before, "loadavg_1m_after": load_average(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
