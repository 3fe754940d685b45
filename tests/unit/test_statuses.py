"""Statuses: the SQL's literals are the enums' values, and Python compares members."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hive.statuses import ApprovalStatus, AttemptOutcome, RunStatus, ServiceStatus, StepStatus

HIVE = Path(__file__).resolve().parents[2] / "hive"
ENUMS = (RunStatus, StepStatus, AttemptOutcome, ServiceStatus, ApprovalStatus)
KNOWN = {str(s) for enum in ENUMS for s in enum}

# `status = 'x'`, `status IN ('x', 'y')`, `status <> 'x'`, `SET status = 'x'`,
# `THEN 'x' ELSE status`: every place a status is written out in SQL text.
_COMPARED = re.compile(r"status\s*(?:=|<>|IN)\s*\(?\s*((?:'\w+'\s*,?\s*)+)", re.IGNORECASE)
_CASE = re.compile(r"THEN\s+'(\w+)'\s+ELSE\s+status", re.IGNORECASE)


def _sql_status_literals() -> set[str]:
    found: set[str] = set()
    for path in (HIVE / "db").glob("*.py"):
        text = path.read_text()
        for group in _COMPARED.findall(text):
            found.update(re.findall(r"'(\w+)'", group))
        found.update(_CASE.findall(text))
    return found


def test_every_status_written_in_sql_is_an_enum_value() -> None:
    literals = _sql_status_literals()

    assert {"pending", "running", "queued", "succeeded", "failed", "skipped"} <= literals
    assert literals <= KNOWN, literals - KNOWN


def test_no_python_code_compares_against_a_bare_status_string() -> None:
    offenders = []
    for path in HIVE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for operand in operands:
                    values = (
                        operand.elts
                        if isinstance(operand, ast.Tuple | ast.List | ast.Set)
                        else [operand]
                    )
                    for value in values:
                        if isinstance(value, ast.Constant) and value.value in KNOWN:
                            offenders.append(f"{path.relative_to(HIVE)}:{node.lineno}")

    assert not offenders
