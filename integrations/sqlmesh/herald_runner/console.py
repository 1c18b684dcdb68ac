"""A SQLMesh console that reports the apply stages (creation, backfill, promote) to Herald.

SQLMesh's plan evaluator and scheduler call these hooks as they work, from worker threads; each hook
turns into one runner move with the same payloads as SQLMesh's web console puts in its trackers
(``PlanStageCreation``, ``PlanStageBackfill`` with ``BackfillTask``s, ``PlanStagePromote``). A hook
never raises: a report Herald refuses makes the circuit breaker trip instead, so SQLMesh stops at its
next node.
"""

from __future__ import annotations

import threading
import typing as t

from sqlmesh.core.console import NoopConsole
from sqlmesh.core.environment import EnvironmentNamingInfo
from sqlmesh.core.snapshot import Snapshot, SnapshotInfoLike, SnapshotTableInfo
from sqlmesh.utils.date import now_timestamp

from .herald import StageReporter

if t.TYPE_CHECKING:
    from sqlmesh.core.snapshot.definition import Interval, Intervals


class HeraldConsole(NoopConsole):
    """Quiet in the terminal; every apply stage goes to Herald through a :class:`StageReporter`."""

    def __init__(self, reporter: StageReporter) -> None:
        super().__init__()
        self._reporter = reporter
        self._lock = threading.Lock()
        self._created = 0
        self._promoted = 0
        self._queue: list[str] = []
        self._completed: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._started: set[str] = set()

    def _start(self, stage: str, details: dict[str, t.Any]) -> None:
        with self._lock:
            self._started.add(stage)
        self._reporter.start(stage, details)

    def _stop(self, stage: str, success: bool) -> None:
        # SQLMesh calls some stop hooks without their start (creation with nothing to create);
        # Herald would refuse to stop a stage that never started.
        with self._lock:
            if stage not in self._started:
                return
            self._started.discard(stage)
        self._reporter.stop(stage, success)

    def start_creation_progress(
        self,
        snapshots: t.List[Snapshot],
        environment_naming_info: EnvironmentNamingInfo,
        default_catalog: t.Optional[str],
    ) -> None:
        self._created = 0
        self._start("creation", {"total_tasks": len(snapshots), "num_tasks": 0})

    def update_creation_progress(self, snapshot: SnapshotInfoLike) -> None:
        with self._lock:
            self._created += 1
            done = self._created
        self._reporter.update("creation", {"num_tasks": done})

    def stop_creation_progress(self, success: bool = True) -> None:
        self._stop("creation", success)

    def start_evaluation_progress(
        self,
        batched_intervals: t.Dict[Snapshot, "Intervals"],
        environment_naming_info: EnvironmentNamingInfo,
        default_catalog: t.Optional[str],
        audit_only: bool = False,
    ) -> None:
        if audit_only:
            return
        now_ms = now_timestamp()
        tasks: dict[str, dict[str, t.Any]] = {}
        for snapshot, intervals in batched_intervals.items():
            tasks[snapshot.name] = {
                "name": snapshot.name,
                "view_name": snapshot.display_name(environment_naming_info, default_catalog),
                "node_type": snapshot.node_type.value,
                "parents": sorted(parent.name for parent in snapshot.parents),
                "completed": 0,
                "total": len(intervals),
                "start": now_ms,
            }
        with self._lock:
            self._queue = []
            self._completed = {name: 0 for name in tasks}
            self._totals = {snapshot.name: len(batches) for snapshot, batches in batched_intervals.items()}
        self._start("backfill", {"queue": [], "tasks": tasks})

    def start_snapshot_evaluation_progress(self, snapshot: Snapshot, audit_only: bool = False) -> None:
        if audit_only:
            return
        with self._lock:
            if snapshot.name not in self._queue:
                self._queue.append(snapshot.name)
            queued = list(self._queue)
        self._reporter.update("backfill", {"queue": queued})

    def update_snapshot_evaluation_progress(
        self,
        snapshot: Snapshot,
        interval: "Interval",
        batch_idx: int,
        duration_ms: t.Optional[int],
        num_audits_passed: int,
        num_audits_failed: int,
        audit_only: bool = False,
        execution_stats: t.Any = None,
        auto_restatement_triggers: t.Any = None,
    ) -> None:
        if audit_only:
            return
        with self._lock:
            completed = self._completed.get(snapshot.name, 0) + 1
            self._completed[snapshot.name] = completed
            if snapshot.name in self._queue:
                self._queue.remove(snapshot.name)
            queued = list(self._queue)
            task: dict[str, t.Any] = {"completed": completed}
            if completed >= self._totals.get(snapshot.name, 0):
                task["end"] = now_timestamp()
        self._reporter.update("backfill", {"queue": queued, "tasks": {snapshot.name: task}})

    def stop_evaluation_progress(self, success: bool = True) -> None:
        self._stop("backfill", success)

    def start_promotion_progress(
        self,
        snapshots: t.List[SnapshotTableInfo],
        environment_naming_info: EnvironmentNamingInfo,
        default_catalog: t.Optional[str],
    ) -> None:
        self._promoted = 0
        self._start(
            "promote",
            {
                "total_tasks": len(snapshots),
                "num_tasks": 0,
                "target_environment": environment_naming_info.name,
            },
        )

    def update_promotion_progress(self, snapshot: SnapshotInfoLike, promoted: bool) -> None:
        with self._lock:
            self._promoted += 1
            done = self._promoted
        self._reporter.update("promote", {"num_tasks": done})

    def stop_promotion_progress(self, success: bool = True) -> None:
        self._stop("promote", success)
