"""The operations on the farm. The Python client, the ``hive`` command and the HTTP API
call these and nothing below them.

Each function takes the settings and a :class:`Caller` (a tenant, or every tenant, and a
role). The role's right is checked first (:class:`~hive.errors.PermissionDenied`), then
everything read or changed is scoped to the caller's tenant: another tenant's run is
:class:`~hive.errors.RunNotFound`, as if it did not exist. Role checks and tenant scoping
live here and nowhere else.

::

    pipelines      list_pipelines, get_pipeline, validate_input, check_pipeline_files,
                   pipeline_problems (the files that do not load), list_agents
                   (AgentViews); pipeline_view: a Pipeline as a PipelineView
    submit         submit (idempotent: every submit carries a key)
    runs           get_run, get_run_state, list_runs, list_runs_page (RunPage: cursor
                   pagination), wait_for_run, cancel_run
    replay         replay_run, replay_failed_runs
    dead_letters   list_dead_letters, dead_letter_report
    approvals      list_approvals, get_approval, approve, reject (ApprovalViews): steps held
                   for a person's decision
    services       register_service, heartbeat_service, deregister_service,
                   get_service_instance, list_service_instances, pick_instance
                   (ServiceInstanceViews): the service registry
    maintenance    recover, purge, health_sweep, cleanup_services, upgrade_schema,
                   check_servers, check_broker
    workers        list_workers (WorkerViews): the workers in the registry
    breakers       list_breakers, get_breaker, open_breaker, close_breaker (BreakerViews):
                   the fleet's circuit breakers (hive.guard)
    budgets        list_budgets, get_budget, set_budget, clear_budget (BudgetViews):
                   tenants' daily cost budgets and today's spending
    status         farm_status (FarmStatus): the farm at a glance, from the exporter's figures
    usage          usage_by_tenant (UsageViews): tokens and cost per tenant
    health         ping_worker, beat_health, flower_health, exporter_health, api_health
                   (Health): is each long-running process doing its job (`hive healthcheck`)
    api_keys       create_api_key, list_api_keys, revoke_api_key, authenticate
                   (ApiKeyView, NewApiKey, Principal): the HTTP API's keys;
                   follow_key_revocations: an API process hears of keys revoked anywhere
                   at once (revocations: Redis pub/sub)
    admission      admit_request (RateAllowance): a tenant's request rate, over every API
                   process; submit's max_in_flight caps its runs unfinished
    audit          record_audit, list_audit, outcome_of (AuditView, Outcome, AuditedBy): who
                   changed what
    failures       translate_failure: a server error that escaped, as the HiveError naming
                   its setting
    farm           check_farm, and the @operation mark every operation above carries: the
                   settings given must name the process's own servers (one farm a process);
                   serve_at_once sizes its database pools to the calls it answers at once;
                   confirm_publishes_in_batches takes publish confirmations off its path
"""

from hive.service.admission import RateAllowance, admit_request
from hive.service.api_keys import (
    ApiKeyView,
    NewApiKey,
    Principal,
    authenticate,
    create_api_key,
    follow_key_revocations,
    list_api_keys,
    revoke_api_key,
)
from hive.service.approvals import approve, get_approval, list_approvals, reject
from hive.service.arguments import parse_run_id
from hive.service.audit import (
    Action,
    AuditedBy,
    AuditView,
    Outcome,
    list_audit,
    outcome_of,
    record_audit,
)
from hive.service.breakers import (
    BreakerView,
    close_breaker,
    get_breaker,
    list_breakers,
    open_breaker,
)
from hive.service.budgets import (
    BudgetView,
    clear_budget,
    get_budget,
    list_budgets,
    set_budget,
)
from hive.service.caller import OPERATOR, Caller, Right, Role
from hive.service.dead_letters import dead_letter_report, list_dead_letters
from hive.service.failures import translate_failure
from hive.service.farm import check_farm, confirm_publishes_in_batches, serve_at_once
from hive.service.health import (
    Health,
    api_health,
    beat_health,
    exporter_health,
    flower_health,
    ping_worker,
)
from hive.service.maintenance import (
    check_broker,
    check_servers,
    cleanup_services,
    health_sweep,
    purge,
    recover,
    upgrade_schema,
)
from hive.service.pipelines import (
    check_pipeline_files,
    get_pipeline,
    list_agents,
    list_pipelines,
    pipeline_problems,
    validate_input,
)
from hive.service.replay import replay_failed_runs, replay_run
from hive.service.runs import (
    cancel_run,
    get_run,
    get_run_state,
    list_runs,
    list_runs_page,
    wait_for_run,
)
from hive.service.services import (
    deregister_service,
    get_service_instance,
    heartbeat_service,
    list_service_instances,
    pick_instance,
    register_service,
)
from hive.service.status import FarmStatus, farm_status
from hive.service.submit import submit
from hive.service.usage import UsageView, usage_by_tenant
from hive.service.views import (
    AgentView,
    ApprovalEvent,
    ApprovalView,
    DeadLetterReport,
    DeadLetterView,
    PipelineStepView,
    PipelineView,
    RunPage,
    RunState,
    RunView,
    ServiceInstanceView,
    StepView,
    Submitted,
    pipeline_view,
)
from hive.service.workers import WorkerView, list_workers

__all__ = [
    "OPERATOR",
    "Action",
    "AgentView",
    "ApiKeyView",
    "ApprovalEvent",
    "ApprovalView",
    "AuditView",
    "AuditedBy",
    "BreakerView",
    "BudgetView",
    "Caller",
    "DeadLetterReport",
    "DeadLetterView",
    "FarmStatus",
    "Health",
    "NewApiKey",
    "Outcome",
    "PipelineStepView",
    "PipelineView",
    "Principal",
    "RateAllowance",
    "Right",
    "Role",
    "RunPage",
    "RunState",
    "RunView",
    "ServiceInstanceView",
    "StepView",
    "Submitted",
    "UsageView",
    "WorkerView",
    "admit_request",
    "api_health",
    "approve",
    "authenticate",
    "beat_health",
    "cancel_run",
    "check_broker",
    "check_farm",
    "check_pipeline_files",
    "check_servers",
    "cleanup_services",
    "clear_budget",
    "close_breaker",
    "confirm_publishes_in_batches",
    "create_api_key",
    "dead_letter_report",
    "deregister_service",
    "exporter_health",
    "farm_status",
    "flower_health",
    "follow_key_revocations",
    "get_approval",
    "get_breaker",
    "get_budget",
    "get_pipeline",
    "get_run",
    "get_run_state",
    "get_service_instance",
    "health_sweep",
    "heartbeat_service",
    "list_agents",
    "list_api_keys",
    "list_approvals",
    "list_audit",
    "list_breakers",
    "list_budgets",
    "list_dead_letters",
    "list_pipelines",
    "list_runs",
    "list_runs_page",
    "list_service_instances",
    "list_workers",
    "open_breaker",
    "outcome_of",
    "parse_run_id",
    "pick_instance",
    "ping_worker",
    "pipeline_problems",
    "pipeline_view",
    "purge",
    "record_audit",
    "recover",
    "register_service",
    "reject",
    "replay_failed_runs",
    "replay_run",
    "revoke_api_key",
    "serve_at_once",
    "set_budget",
    "submit",
    "translate_failure",
    "upgrade_schema",
    "usage_by_tenant",
    "validate_input",
    "wait_for_run",
]
