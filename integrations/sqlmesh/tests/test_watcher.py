"""The plan watcher: which trackers on ``/api/events`` start a plan, mark it as an apply plan, or
cancel it. The trackers are shaped as Herald sends them (README.md, "SQLMesh")."""

import json
import unittest

from herald_runner.events import Event
from herald_runner.herald import PlanRequest, PlanWatcher

OPTIONS = {"skip_tests": True, "skip_backfill": False}


def overview(start_ms: int, **extra: object) -> Event:
    tracker: dict[str, object] = {
        "meta": {"status": "init", "start": start_ms, "done": False},
        "environment": "dev",
        "plan_options": OPTIONS,
    }
    tracker.update(extra)
    return Event("plan-overview", json.dumps(tracker), "")


def apply(start_ms: int) -> Event:
    return Event("plan-apply", json.dumps({"meta": {"status": "init", "start": start_ms, "done": False}}), "")


def cancel(start_ms: int, status: str = "init") -> Event:
    meta = {"status": status, "start": start_ms, "done": status != "init"}
    return Event("plan-cancel", json.dumps({"meta": meta, "cancel": {"meta": meta}}), "")


class PlanWatcherTest(unittest.TestCase):
    def test_a_new_overview_is_queued_once_with_its_request(self) -> None:
        watcher = PlanWatcher()
        watcher.handle(overview(1_000, start="2024-01-01", categories={"db.a": 1, "db.b": "x"}))
        watcher.handle(overview(1_000))  # single flight re-emits the same plan
        request = watcher.next_plan(0.1)
        self.assertEqual(
            request,
            PlanRequest(opened_ms=1_000, environment="dev", plan_options=OPTIONS, start="2024-01-01", categories={"db.a": 1}),
        )
        self.assertIsNone(watcher.next_plan(0.01))

    def test_an_overview_a_runner_has_started_or_that_ended_is_not_queued(self) -> None:
        watcher = PlanWatcher()
        watcher.handle(overview(1_000, validation={"meta": {"status": "init", "start": 1_001, "done": False}}))
        ended = {"meta": {"status": "success", "start": 2_000, "end": 2_500, "done": True}}
        watcher.handle(Event("plan-overview", json.dumps(ended), ""))
        watcher.handle(Event("plan-overview", "{}", ""))  # a snapshot before any plan
        watcher.handle(Event("plan-overview", "not json", ""))
        self.assertIsNone(watcher.next_plan(0.01))

    def test_an_apply_tracker_opened_with_the_overview_marks_an_apply_plan(self) -> None:
        watcher = PlanWatcher()
        watcher.handle(apply(1_000))
        watcher.handle(overview(1_000))
        watcher.handle(overview(2_000))
        first, second = watcher.next_plan(0.1), watcher.next_plan(0.1)
        assert first is not None and second is not None
        self.assertTrue(watcher.applies(first))
        self.assertFalse(watcher.applies(second))

    def test_a_cancel_counts_for_the_plan_it_follows(self) -> None:
        watcher = PlanWatcher()
        watcher.handle(overview(1_000))
        request = watcher.next_plan(0.1)
        assert request is not None
        self.assertFalse(watcher.cancel_requested(request))
        watcher.handle(cancel(900))  # a cancel from before this plan opened
        self.assertFalse(watcher.cancel_requested(request))
        watcher.handle(cancel(1_500, status="fail"))  # a refused cancel is no cancel
        self.assertFalse(watcher.cancel_requested(request))
        watcher.handle(cancel(1_500))
        self.assertTrue(watcher.cancel_requested(request))


class PlanRequestTest(unittest.TestCase):
    def test_the_request_route_describes_the_plan_with_its_categories(self) -> None:
        seen = PlanRequest(opened_ms=1_000, environment="dev")
        answer = {
            "state": "apply_overview",
            "opened_ms": 1_000,
            "request": {
                "environment": "prod",
                "plan_dates": {"start": "2024-01-01"},
                "plan_options": OPTIONS,
                "categories": {"db.a": 2},
            },
        }
        self.assertEqual(
            seen.with_request(answer),
            PlanRequest(opened_ms=1_000, environment="prod", plan_options=OPTIONS, start="2024-01-01", categories={"db.a": 2}),
        )

    def test_an_answer_about_another_plan_or_an_ended_one_describes_nothing(self) -> None:
        seen = PlanRequest(opened_ms=1_000)
        self.assertIsNone(seen.with_request({"state": "overview", "opened_ms": 2_000, "request": {}}))
        self.assertIsNone(seen.with_request({"state": "cancelled", "opened_ms": 1_000, "request": {}}))
        self.assertIsNone(seen.with_request({"state": "idle"}))


if __name__ == "__main__":
    unittest.main()
