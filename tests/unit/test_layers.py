"""The layers hold: imports point down only, and a producer loads no more than it needs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).with_name("lint-imports")

    result = subprocess.run(
        [str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_a_producer_imports_neither_beat_nor_the_cli_and_its_app_has_no_beat_schedule() -> None:
    script = (
        "import sys\n"
        "import hive.client\n"
        "from hive.tasks.app import app\n"
        "top = {'.'.join(m.split('.')[:2]) for m in sys.modules}\n"
        "loaded = top & {'hive.beat', 'hive.cli'}\n"
        "assert not loaded, loaded\n"
        "assert not app.conf.beat_schedule, app.conf.beat_schedule\n"
    )

    result = _python(script)

    assert result.returncode == 0, result.stderr


# What the one-shot commands that read the farm never use: the Celery stack, Redis, the
# agents' HTTP client, the guard, jsonschema. Each costs a `hive` command's start-up time.
_HEAVY = (
    "billiard", "celery", "httpx", "jsonschema", "kombu", "prometheus_client", "redis",
    "referencing", "hive.agents.builtin", "hive.beat", "hive.guard", "hive.tasks",
)  # fmt: skip


def test_hive_runs_list_imports_neither_celery_nor_redis_nor_the_agents() -> None:
    # What `hive runs list` imports, in the order it does: the command tree, the settings and
    # logging checked before any command runs (HiveCommand), the service layer it calls.
    # A package is in sys.modules once any module of it is.
    script = (
        "import sys\n"
        "import hive.cli\n"
        "import hive.settings, hive.logs\n"
        "from hive import service\n"
        "import hive.service.runs, hive.service.submit, hive.db.runs\n"
        f"heavy = [name for name in {_HEAVY!r} if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )

    result = _python(script)

    assert result.returncode == 0, result.stderr


def test_a_server_imports_at_start_what_the_operations_import_on_first_use() -> None:
    # `hive api` calls serve_at_once as it starts: no request pays for Celery or the guard.
    # All of them but hive.beat: maintenance, which no request runs.
    script = (
        "import sys\n"
        "from hive import service\n"
        "service.serve_at_once(4)\n"
        f"missing = [name for name in {_HEAVY!r} if name not in sys.modules]\n"
        "assert missing == ['hive.beat'], missing\n"
    )

    result = _python(script)

    assert result.returncode == 0, result.stderr


# An http step that calls a URL written in the pipeline, and an llm step at an IPv4 address:
# their input models check each URL as the shipped pipelines' llm steps have theirs checked.
_CALLING_PIPELINE = """
name: calling
version: 1
input_schema: {type: object, properties: {q: {type: string}}}
steps:
  - id: fetch
    agent: http
    input: {url: "https://partner.example.com:8443/api/v1/items?limit=5", query: {q: $input.q}}
  - id: ask
    agent: llm
    needs: [fetch]
    input:
      provider: local
      base_url: http://127.0.0.1:11434/v1
      model: llama3.1:8b
      messages: [{role: user, content: $steps.fetch.text}]
"""


def test_loading_the_agents_and_checking_pipelines_imports_no_http_client(tmp_path: Path) -> None:
    # What `hive submit`, `hive pipelines list` and `hive status` do before they reach the
    # farm: the agent registry (every built-in agent, its models), the pipelines loaded and
    # checked against them, http and llm steps among them. httpx (and rich, which httpx's
    # own command line imports) are for a step that runs, not for checking one.
    for source in (ROOT / "config" / "pipelines").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "calling.yaml").write_text(_CALLING_PIPELINE)
    script = (
        "import sys\n"
        "import hive.cli\n"
        "from hive import service\n"
        "from hive.agents.registry import default_registry\n"
        "from hive.service.caller import OPERATOR\n"
        "from hive.settings import get_settings\n"
        "settings = get_settings()\n"
        "problems = service.pipeline_problems(settings, OPERATOR)\n"
        "assert not problems, problems\n"
        "pipelines = service.list_pipelines(settings, OPERATOR)\n"
        "agents = {step.agent for p in pipelines.values() for step in p.steps}\n"
        "assert {'http', 'llm'} <= agents, agents\n"
        "service.validate_input(settings, OPERATOR, 'calling', {'q': 'x'})\n"
        "assert {'http', 'llm'} <= set(default_registry().names())\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & {'httpx', 'httpcore', 'rich'}\n"
        "assert not loaded, loaded\n"
    )

    result = _python(script, HIVE_PIPELINES_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr


def _python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by a fresh interpreter, with ``env`` added to the environment: what
    it imports is its own."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_the_service_package_exports_exactly_its_operations() -> None:
    import hive.service

    assert sorted(hive.service.__all__) == [
        "Action", "AgentView", "ApiKeyView", "ApprovalEvent", "ApprovalView", "AuditView",
        "AuditedBy",
        "BreakerView",
        "BudgetView", "Caller", "DeadLetterReport", "DeadLetterView", "FarmStatus", "Health",
        "NewApiKey", "OPERATOR", "Outcome", "PipelineStepView", "PipelineView", "Principal",
        "RateAllowance", "Right", "Role", "RunPage", "RunState", "RunView",
        "ServiceInstanceView", "StepView", "Submitted", "UsageView", "WorkerView",
        "admit_request", "api_health", "approve", "authenticate", "beat_health",
        "cancel_run", "check_broker", "check_farm", "check_pipeline_files", "check_servers",
        "cleanup_services", "clear_budget", "close_breaker", "confirm_publishes_in_batches",
        "create_api_key",
        "dead_letter_report", "deregister_service", "exporter_health", "farm_status",
        "flower_health", "follow_key_revocations", "get_approval", "get_breaker", "get_budget",
        "get_pipeline", "get_run",
        "get_run_state", "get_service_instance", "health_sweep", "heartbeat_service",
        "list_agents", "list_api_keys", "list_approvals", "list_audit", "list_breakers",
        "list_budgets", "list_dead_letters", "list_pipelines", "list_runs", "list_runs_page",
        "list_service_instances", "list_workers", "open_breaker", "outcome_of", "parse_run_id",
        "pick_instance", "ping_worker", "pipeline_problems", "pipeline_view", "purge",
        "record_audit", "recover", "register_service", "reject", "replay_failed_runs",
        "replay_run", "revoke_api_key", "serve_at_once", "set_budget", "submit",
        "translate_failure", "upgrade_schema", "usage_by_tenant", "validate_input",
        "wait_for_run",
    ]  # fmt: skip
    for name in hive.service.__all__:
        assert getattr(hive.service, name) is not None


def test_every_module_outside_hive_db_is_forbidden_the_database_drivers() -> None:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [
        c for c in contracts["contracts"] if c["name"] == "only hive.db talks to PostgreSQL"
    ]
    top_level = {
        f"hive.{path.stem}"
        for path in (ROOT / "hive").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }

    assert set(contract["source_modules"]) == top_level - {"hive.db"}
    assert {"sqlalchemy", "psycopg2"} <= set(contract["forbidden_modules"])


def test_neither_a_producer_nor_the_cli_loads_the_web_server() -> None:
    script = (
        "import sys\n"
        "import hive.client, hive.cli\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & {'fastapi', 'uvicorn', 'starlette'}\n"
        "loaded |= {m for m in sys.modules if m.startswith('hive.api')}\n"
        "assert not loaded, loaded\n"
    )

    result = _python(script)

    assert result.returncode == 0, result.stderr


def test_the_api_package_exports_its_factory_alone() -> None:
    import hive.api

    assert hive.api.__all__ == ["create_app"]


# Reads of variables that are not Hive's settings, each with its reason.
_OTHER_READERS = {
    # prometheus-client's own variable (PROMETHEUS_MULTIPROC_DIR), which it reads too.
    "hive/exposition.py",
}


def _environment_reads(path: Path) -> list[int]:
    """Lines of ``path`` that read the environment: ``os.getenv``, ``os.environ.get`` or
    ``os.environ[...]`` as a value (writing a variable for a child library is no read)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.getenv", "os.environ.get", "environ.get", "getenv"):
                reads.append(node.lineno)
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) in ("os.environ", "environ")
        ):
            reads.append(node.lineno)
    return reads


def test_only_the_settings_package_reads_the_environment() -> None:
    package = ROOT / "hive"
    readers = {
        f"{path.relative_to(ROOT)}:{line}"
        for path in package.rglob("*.py")
        if path.parent != package / "settings" and str(path.relative_to(ROOT)) not in _OTHER_READERS
        for line in _environment_reads(path)
    }

    assert not readers, f"read the environment outside hive/settings/: {sorted(readers)}"
    # The check itself finds a read where there is one.
    assert _environment_reads(package / "settings" / "credentials.py")
