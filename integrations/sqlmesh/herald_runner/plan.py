"""Runs one plan with SQLMesh and reports it to Herald: the overview (validation, changes, backfills)
as SQLMesh's web server builds it, then, for an apply plan, ``Context.apply`` with
:class:`HeraldConsole` reporting the apply stages and Herald's cancel as the circuit breaker.
"""

from __future__ import annotations

import enum
import logging
import typing as t
from pathlib import Path

from sqlmesh import Context
from sqlmesh.core.console import set_console
from sqlmesh.core.plan import Plan
from sqlmesh.core.snapshot import SnapshotChangeCategory
from sqlmesh.utils.date import make_inclusive, to_ds
from sqlmesh.utils.errors import CircuitBreakerError

from .console import HeraldConsole
from .herald import JsonObject, PlanRequest, PlanStopped, StageReporter

log = logging.getLogger(__name__)

#: A model's diff in the changes stage is cut to this many characters: a tracker is one Herald event,
#: bounded at 64 KiB by default (HERALD_EVENT_BYTES_MAX).
DIFF_CHARS_MAX = 4_000


class Outcome(enum.Enum):
    """How a plan ended, as the runner saw it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Herald refused the first move: another runner has the plan.
    TAKEN = "taken"


def run_plan(
    project: Path,
    request: PlanRequest,
    reporter: StageReporter,
    applies: t.Callable[[], bool],
) -> Outcome:
    """Runs the plan ``request`` on the SQLMesh project at ``project``.

    ``applies`` says whether the plan also applies; it is asked once the overview has succeeded, by
    which time the event stream has delivered the apply tracker of an apply plan.
    """
    if not reporter.start("validation"):
        if reporter.cancelled:
            reporter.fail()
            return Outcome.CANCELLED
        log.info("plan %s is not ours: %s", request.opened_ms, reporter.refused)
        return Outcome.TAKEN
    set_console(HeraldConsole(reporter))
    context: Context | None = None
    try:
        context = Context(paths=[project])
        plan = _build(context, request)
        _require(reporter.dates(_ds(plan.start), _ds(plan.end)))
        _require(reporter.stop("validation", True))
        reporter.checkpoint()
        _require(reporter.start("changes"))
        _require(reporter.stop("changes", True, _changes(context, plan)))
        reporter.checkpoint()
        _require(reporter.start("backfills"))
        _require(reporter.stop("backfills", True, _backfills(context, plan)))
        _require(reporter.finish("overview", True))
        if not applies():
            return Outcome.SUCCEEDED
        reporter.open_apply()
        reporter.checkpoint()
        context.apply(plan, circuit_breaker=reporter.should_stop)
        reporter.checkpoint()
        _require(reporter.finish("apply", True))
        return Outcome.SUCCEEDED
    except (CircuitBreakerError, PlanStopped) as stop:
        log.info("plan %s stopped: %s", request.opened_ms, stop)
    except Exception:  # noqa: BLE001 - any SQLMesh failure fails the plan at Herald, then the runner goes on
        log.exception("plan %s failed", request.opened_ms)
    finally:
        if context is not None:
            context.close()
    reporter.fail()
    return Outcome.CANCELLED if reporter.cancelled else Outcome.FAILED


def _require(sent: bool) -> None:
    if not sent:
        raise PlanStopped("Herald did not take the move")


def _build(context: Context, request: PlanRequest) -> Plan:
    options = request.plan_options
    restate = options.get("restate_models")
    builder = context.plan_builder(
        environment=request.environment,
        start=request.start,
        end=request.end,
        create_from=options.get("create_from"),
        skip_tests=bool(options.get("skip_tests")),
        restate_models=restate if isinstance(restate, list) else None,
        no_gaps=bool(options.get("no_gaps")),
        skip_backfill=bool(options.get("skip_backfill")),
        forward_only=bool(options.get("forward_only")),
        no_auto_categorization=bool(options.get("no_auto_categorization")),
        include_unmodified=bool(options.get("include_unmodified")),
    )
    plan = builder.build()
    if request.categories:
        for new, _ in plan.context_diff.modified_snapshots.values():
            category = request.categories.get(new.name)
            if category is not None and plan.is_new_snapshot(new):
                builder.set_choice(new, SnapshotChangeCategory(category))
        plan = builder.build()
    return plan


def _ds(value: t.Any) -> str | None:
    return to_ds(value) if value is not None else None


def _display(context: Context, plan: Plan, name: str) -> JsonObject:
    """SQLMesh's ``ChangeDisplay`` of a model in the plan's environment."""
    snapshot = plan.context_diff.snapshots_by_name.get(name)
    if snapshot is None:
        return {"name": name, "view_name": name, "node_type": "model", "parents": []}
    return {
        "name": name,
        "view_name": snapshot.display_name(plan.environment_naming_info, context.default_catalog),
        "node_type": snapshot.node_type.value,
        "parents": sorted(parent.name for parent in snapshot.parents),
    }


def _changes(context: Context, plan: Plan) -> JsonObject:
    """The changes stage: added, removed and modified models, as SQLMesh's ``PlanChanges``."""
    diff = plan.context_diff
    if not diff.has_changes:
        return {}
    direct: list[JsonObject] = []
    indirect: list[JsonObject] = []
    metadata: list[JsonObject] = []
    for name, (new, _) in sorted(diff.modified_snapshots.items()):
        if diff.directly_modified(name):
            category = new.change_category
            direct.append(
                {
                    **_display(context, plan, name),
                    "diff": diff.text_diff(name)[:DIFF_CHARS_MAX],
                    **({"change_category": int(category)} if category is not None else {}),
                }
            )
        elif diff.indirectly_modified(name):
            indirect.append(_display(context, plan, name))
        elif diff.metadata_updated(name):
            metadata.append(_display(context, plan, name))
    return {
        "added": [_display(context, plan, sid.name) for sid in sorted(diff.added, key=lambda s: s.name)],
        "removed": [
            {"name": sid.name, "view_name": sid.name, "node_type": info.node_type.value, "parents": []}
            for sid, info in diff.removed_snapshots.items()
        ],
        "modified": {"direct": direct, "indirect": indirect, "metadata": metadata},
    }


def _backfills(context: Context, plan: Plan) -> JsonObject:
    """The backfills stage: each model with missing intervals, its range and its number of batches."""
    if not plan.requires_backfill:
        return {}
    models = []
    for missing in sorted(plan.missing_intervals, key=lambda m: m.snapshot_id.name):
        snapshot = plan.context_diff.snapshots.get(missing.snapshot_id)
        batch_size = snapshot.node.batch_size if snapshot is not None and snapshot.is_model else None
        count = len(missing.intervals)
        batches = -(-count // batch_size) if batch_size else 1
        first, last = missing.merged_intervals[0][0], missing.merged_intervals[-1][1]
        models.append(
            {
                **_display(context, plan, missing.snapshot_id.name),
                "interval": [to_ds(bound) for bound in make_inclusive(first, last)],
                "batches": batches,
            }
        )
    return {"models": models}
