"""The runner's command line and main loop: follow ``/api/events``, run each new plan, report it."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import typing as t
from pathlib import Path

from .events import Subscription
from .herald import APPLY_STATES, HeraldClient, HeraldError, PlanRequest, PlanWatcher, StageReporter

log = logging.getLogger("herald_runner")

#: Exit codes of ``--once``, by outcome.
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 3}
#: Exit code when the runner cannot start (bad arguments, Herald not answering).
EXIT_UNAVAILABLE = 2


def parse_args(argv: t.Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line (the token comes from the environment, never from arguments)."""
    parser = argparse.ArgumentParser(
        prog="python -m herald_runner",
        description="Run SQLMesh plans that are opened on Herald and report their stages to it. "
        "The access token (publish and subscribe scopes) is read from HERALD_TOKEN.",
    )
    parser.add_argument("--url", default=os.environ.get("HERALD_URL", "http://127.0.0.1:8787"),
                        help="Herald's base URL (default: $HERALD_URL or http://127.0.0.1:8787)")
    parser.add_argument("--project", type=Path, required=True, help="the SQLMesh project directory")
    parser.add_argument("--once", action="store_true",
                        help="exit after one plan: 0 succeeded, 1 failed, 3 cancelled")
    parser.add_argument("--keepalive-s", type=float, default=10.0,
                        help="report a running stage at least this often (renews the runner's hold "
                        "on the plan); 0 turns it off (default 10)")
    parser.add_argument("--connect-timeout-s", type=float, default=60.0,
                        help="give up if /api/events does not answer 200 within this (default 60)")
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    return parser.parse_args(argv)


def main(argv: t.Sequence[str] | None = None) -> int:
    """Runs the runner; returns the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = os.environ.get("HERALD_TOKEN", "")
    if not token:
        log.error("set HERALD_TOKEN to an access token with the publish and subscribe scopes")
        return EXIT_UNAVAILABLE
    if not (args.project / "config.yaml").exists() and not (args.project / "config.py").exists():
        log.error("%s is not a SQLMesh project (no config.yaml or config.py)", args.project)
        return EXIT_UNAVAILABLE

    # The project's relative paths (DuckDB's `database: db.db`, logs, cache) are relative to the working
    # directory, as for the `sqlmesh` command run in the project.
    project = args.project.resolve()
    os.chdir(project)

    watcher = PlanWatcher()
    events = Subscription(args.url.rstrip("/") + "/api/events", token, watcher.handle)
    events.start()
    if not events.wait_connected(args.connect_timeout_s):
        log.error("%s/api/events did not answer 200 within %s s", args.url, args.connect_timeout_s)
        events.stop()
        return EXIT_UNAVAILABLE
    _say({"ready": True})
    # SQLMesh sends anonymous usage data to its vendor unless told not to; a runner has no business
    # calling anywhere but Herald and its warehouse.
    os.environ.setdefault("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "true")
    logging.getLogger("sqlmesh").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    # Imported here: SQLMesh takes seconds to import, and argument errors should not wait for it.
    from .plan import Outcome, run_plan

    client = HeraldClient(args.url, token)
    try:
        while True:
            request = watcher.next_plan(timeout_s=1.0)
            if request is None:
                continue
            described = _described(client, request)
            if described is None:
                log.info("plan %s is no longer open", request.opened_ms)
                continue
            request, applies = described
            log.info("plan %s opened (environment %s)", request.opened_ms, request.environment)
            reporter = StageReporter(
                client,
                cancel_seen=functools.partial(watcher.cancel_requested, request),
                keepalive_s=args.keepalive_s,
            )
            applies = applies or functools.partial(watcher.applies, request)
            try:
                outcome = run_plan(project, request, reporter, applies)
            finally:
                reporter.close()
            _say({"plan": request.opened_ms, "outcome": outcome.value})
            if args.once and outcome is not Outcome.TAKEN:
                return EXIT_CODES[outcome.value]
    except KeyboardInterrupt:
        return 0
    finally:
        events.stop()


def _described(
    client: HeraldClient, request: PlanRequest
) -> tuple[PlanRequest, t.Callable[[], bool] | None] | None:
    """The plan as ``GET /api/plan/request`` describes it (the UI's body with its categories) and
    whether it applies; None if it no longer runs. A Herald without that route leaves the request as
    the overview tracker carries it, and the apply tracker's arrival tells whether it applies."""
    try:
        answer = client.plan_request()
    except HeraldError as error:
        log.warning("%s; using the plan as its tracker shows it", error)
        return request, None
    if answer is None:
        return request, None
    described = request.with_request(answer)
    if described is None:
        return None
    applies = answer.get("state") in APPLY_STATES
    return described, lambda: applies


def _say(line: dict[str, t.Any]) -> None:
    """One JSON line on stdout, for whoever supervises the runner (the end-to-end test reads them)."""
    print(json.dumps(line), flush=True)
