"""A resume keeps only `config.PLAN_SETTINGS` from the job's submission: every other ``flink.*``
setting may differ at a resume, so none of them may change the operators a job's plan has.

Plans only (no cluster, no Kafka; the connector jars of `make setup`): each job is built in a
local environment with one other setting changed, and the shape of its stream graph is compared:
what Flink derives the operators' ids from (the operators, their inputs and how records are
shipped between them), the names without their arguments.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.flink_local]

pytest.importorskip("pyflink.table")

from flink_jobs import JOBS  # noqa: E402
from flink_jobs.common import JobContext, attach_inserts, create_env  # noqa: E402
from flinkpulse.config import PLAN_SETTINGS, FlinkConfig, load_config  # noqa: E402

#: a changed value of each flink.* setting that is not a plan setting and that chooses between
#: ways of running (the numeric ones only tune operators the plan has anyway)
OTHER_SETTINGS: dict[str, Any] = {
    "object_reuse": False,
    "python_worker_per_operator": False,
    "python_execution_mode": "thread",
}


def _shape(plan: str) -> list[tuple[str, str, list[tuple[int, str]]]]:
    """The stream graph's operators (JSON of ``get_execution_plan``): kind, name without its
    arguments, and inputs (by position), with how records reach it. Ids and the numbers of
    anonymous views count on across builds in one JVM."""
    nodes = json.loads(plan)["nodes"]
    at = {node["id"]: i for i, node in enumerate(nodes)}
    return [
        (
            node["pact"],
            re.sub(r"\$\d+|[\[(].*", "", node["type"]),
            [(at[p["id"]], p["ship_strategy"]) for p in node.get("predecessors", [])],
        )
        for node in nodes
    ]


def _plan(job: str, flink: dict[str, Any]) -> list[tuple[str, str, list[tuple[int, str]]]]:
    cfg = load_config().derive(flink=flink)
    env, t_env = create_env(cfg, job)
    ctx = JobContext(cfg=cfg, t_env=t_env, job=job)
    importlib.import_module(f"flink_jobs.{job}").build(t_env, cfg, ctx)
    attach_inserts(ctx)  # as `execute` submits it
    return _shape(env.get_execution_plan())


def test_every_other_flink_setting_is_either_a_plan_setting_or_listed_here() -> None:
    """A new ``flink.*`` bool or choice must be classified: it changes the plan (then it goes in
    PLAN_SETTINGS) or it does not (then the test below checks that)."""
    plan = {key for section, key in PLAN_SETTINGS if section == "flink"}
    choices = {
        name
        for name, kind in FlinkConfig.__annotations__.items()
        if kind in ("bool", "str") and name != "jobmanager"
    }
    assert choices - plan == set(OTHER_SETTINGS)


@pytest.mark.parametrize("job", JOBS)
def test_no_other_setting_changes_a_jobs_operators(job: str) -> None:
    """All of OTHER_SETTINGS changed at once (a build is ~2 s; one at a time only to name the
    culprit of a failure)."""
    shape = _plan(job, {})
    assert any(kind == "Data Source" for kind, _, _ in shape) and len(shape) > 10
    if _plan(job, OTHER_SETTINGS) != shape:
        changed = [n for n, v in OTHER_SETTINGS.items() if _plan(job, {n: v}) != shape]
        pytest.fail(f"{job}: these settings change its operators: {changed or 'together'}")


def test_thread_mode_keeps_the_vectorized_decoders_operators() -> None:
    """Thread mode runs no pandas UDF: the vectorized decoder falls back to the row one, in the
    decode stage every job shares (flink_jobs.common), so one job shows it."""
    job = JOBS[0]
    vectorized = _plan(job, {"vectorized_decode": True})
    assert _plan(job, {"vectorized_decode": True, "python_execution_mode": "thread"}) == vectorized
