"""Herald's side of the plan runner protocol: reading plan requests and cancels from the SQLMesh
trackers on ``/api/events``, and reporting each move to ``POST /api/plan/stages``.

See README.md, "SQLMesh", for the protocol. Herald checks every move against its plan state machine;
a refused move is a 409, and the answer to an accepted one says whether a cancel is waiting.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from .events import Event

log = logging.getLogger(__name__)

JsonObject = t.Dict[str, t.Any]

OVERVIEW_STAGES = ("validation", "changes", "backfills")

#: The plan states of ``GET /api/plan/request`` in which a plan still runs, and those of an apply plan.
RUNNING_STATES = ("overview", "apply_overview", "applying", "cancelling")
APPLY_STATES = ("apply_overview", "applying")

#: What Herald's 409 says while a cancel waits for the runner (its code, `illegal_transition`, is
#: the same for every refused move).
CANCELLING_MESSAGE = "being cancelled"


class HeraldError(Exception):
    """Herald answered a stage report with something other than 200 or 409, or could not be reached."""


@dataclass(frozen=True)
class PlanRequest:
    """A plan someone asked Herald for, as its overview tracker carries it.

    ``opened_ms`` (the overview's ``meta.start``) tells plans apart. ``categories`` maps model names to
    SQLMesh change categories (1 to 6) when Herald passes them on; otherwise it is empty.
    """

    opened_ms: int
    environment: str | None = None
    plan_options: JsonObject = field(default_factory=dict)
    start: t.Any = None
    end: t.Any = None
    categories: t.Dict[str, int] = field(default_factory=dict)

    @staticmethod
    def from_overview(tracker: JsonObject) -> PlanRequest | None:
        """The request in an overview tracker that no runner has touched yet (status ``init`` and no
        stage started), else None."""
        meta = tracker.get("meta")
        if not isinstance(meta, dict) or meta.get("status") != "init":
            return None
        if any(stage in tracker for stage in OVERVIEW_STAGES):
            return None
        opened_ms = meta.get("start")
        if not isinstance(opened_ms, int):
            return None
        options = tracker.get("plan_options")
        categories = tracker.get("categories")
        return PlanRequest(
            opened_ms=opened_ms,
            environment=tracker.get("environment"),
            plan_options=options if isinstance(options, dict) else {},
            start=tracker.get("start"),
            end=tracker.get("end"),
            categories=(
                {name: value for name, value in categories.items() if isinstance(value, int)}
                if isinstance(categories, dict)
                else {}
            ),
        )


    def with_request(self, answer: JsonObject) -> PlanRequest | None:
        """This plan as ``GET /api/plan/request`` describes it (the body the UI posted, categories
        included), or None if that answer is about another plan or one that no longer runs."""
        if answer.get("opened_ms") != self.opened_ms or answer.get("state") not in RUNNING_STATES:
            return None
        body = answer.get("request")
        if not isinstance(body, dict):
            body = {}
        dates = body.get("plan_dates")
        if not isinstance(dates, dict):
            dates = {}
        options = body.get("plan_options")
        categories = body.get("categories")
        return PlanRequest(
            opened_ms=self.opened_ms,
            environment=body.get("environment"),
            plan_options=options if isinstance(options, dict) else {},
            start=dates.get("start"),
            end=dates.get("end"),
            categories=(
                {name: value for name, value in categories.items() if isinstance(value, int)}
                if isinstance(categories, dict)
                else {}
            ),
        )


class PlanWatcher:
    """Reads the trackers on ``/api/events``: queues each new plan once, remembers which plans also
    apply, and notices cancels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: queue.Queue[PlanRequest] = queue.Queue()
        self._seen: set[int] = set()
        self._apply_opened: set[int] = set()
        self._cancel_ms: int | None = None

    def handle(self, event: Event) -> None:
        """Takes one event from the stream (called on the subscription's thread)."""
        if event.event not in ("plan-overview", "plan-apply", "plan-cancel"):
            return
        try:
            tracker = json.loads(event.data)
        except ValueError:
            log.warning("ignoring a %s event that is not JSON", event.event)
            return
        if not isinstance(tracker, dict):
            return
        meta = tracker.get("meta")
        if not isinstance(meta, dict):
            meta = {}
        with self._lock:
            if event.event == "plan-overview":
                request = PlanRequest.from_overview(tracker)
                if request is not None and request.opened_ms not in self._seen:
                    self._seen.add(request.opened_ms)
                    self._plans.put(request)
            elif event.event == "plan-apply":
                # Herald opens an apply plan's apply tracker with the overview, at the same instant.
                opened_ms = meta.get("start")
                if isinstance(opened_ms, int):
                    self._apply_opened.add(opened_ms)
            else:
                cancel = tracker.get("cancel")
                cancel_meta = cancel.get("meta") if isinstance(cancel, dict) else None
                if isinstance(cancel_meta, dict) and cancel_meta.get("status") == "init":
                    start = cancel_meta.get("start")
                    self._cancel_ms = start if isinstance(start, int) else 0

    def next_plan(self, timeout_s: float) -> PlanRequest | None:
        """The next plan to run, waiting up to ``timeout_s``."""
        try:
            return self._plans.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def applies(self, request: PlanRequest) -> bool:
        """Whether the plan was opened with ``POST /api/commands/apply`` (its apply tracker was seen)."""
        with self._lock:
            return request.opened_ms in self._apply_opened

    def cancel_requested(self, request: PlanRequest) -> bool:
        """Whether a cancel was asked for since the plan opened."""
        with self._lock:
            return self._cancel_ms is not None and self._cancel_ms >= request.opened_ms


class HeraldClient:
    """The runner's routes, with a Bearer token: ``POST /api/plan/stages``, ``GET /api/plan/request``."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 30.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._url = self._base_url + "/api/plan/stages"
        self._token = token
        self._timeout_s = timeout_s

    def post(self, move: JsonObject) -> tuple[int, JsonObject]:
        """Sends one move; returns the status (200 or 409) and the JSON answer."""
        request = urllib.request.Request(
            self._url,
            data=json.dumps(move, separators=(",", ":")).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            body = _json(error.read())
            if error.code == 409:
                return 409, body
            what = f"{move.get('op')} {move.get('stage') or move.get('tracker') or ''}".strip()
            raise HeraldError(f"{what}: {error.code} {body}") from error
        except OSError as error:
            raise HeraldError(f"Herald unreachable: {error}") from error


    def plan_request(self) -> JsonObject | None:
        """``GET /api/plan/request``: the open plan's state and request; None from a Herald without it."""
        request = urllib.request.Request(
            self._base_url + "/api/plan/request",
            headers={"Authorization": f"Bearer {self._token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return _json(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise HeraldError(f"GET /api/plan/request: {error.code} {_json(error.read())}") from error
        except OSError as error:
            raise HeraldError(f"Herald unreachable: {error}") from error


def _json(raw: bytes) -> JsonObject:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class PlanStopped(Exception):
    """The plan must stop: Herald is cancelling it, refused a move, or the plan already ended there."""


class StageReporter:
    """Reports one plan's moves to Herald and holds what the runner knows about the plan there.

    Thread-safe: SQLMesh calls the console from its worker threads. After a cancel (seen on the event
    stream or in an answer) or a refused move, only the failing stop that ends the plan is sent;
    :meth:`should_stop` is then true, which is what SQLMesh's circuit breaker asks.
    """

    def __init__(
        self,
        client: HeraldClient,
        cancel_seen: t.Callable[[], bool],
        keepalive_s: float = 10.0,
    ) -> None:
        self._client = client
        self._cancel_seen = cancel_seen
        self._keepalive_s = keepalive_s
        self._lock = threading.RLock()
        self._running: str | None = None
        self._open_tracker: str | None = "overview"
        self._cancelling = False
        self._refused: str | None = None
        self._ended = False
        self._claimed = False
        self._last_post = time.monotonic()
        self._closed = threading.Event()
        self._keepalive = threading.Thread(target=self._keep_alive, name="herald-keepalive", daemon=True)
        if keepalive_s > 0:
            self._keepalive.start()

    @property
    def cancelled(self) -> bool:
        """Whether a cancel was asked for (by the event stream or Herald's answer)."""
        return self._cancelling or self._cancel_seen()

    @property
    def refused(self) -> str | None:
        """Herald's message for the first refused move, if any."""
        return self._refused

    def should_stop(self) -> bool:
        """SQLMesh's circuit breaker: true once the plan must stop."""
        return self._ended or self._refused is not None or self.cancelled

    def checkpoint(self) -> None:
        """Raises :class:`PlanStopped` if the plan must stop (for steps SQLMesh's breaker does not see)."""
        if self.should_stop():
            raise PlanStopped(self._refused or "cancelled")

    def start(self, stage: str, details: JsonObject | None = None) -> bool:
        """Starts a stage; False if it was not sent or was refused."""
        return self._send({"op": "start", "stage": stage, **({"details": details} if details else {})})

    def update(self, stage: str, details: JsonObject) -> bool:
        """Merges ``details`` into a running stage (JSON Merge Patch)."""
        return self._send({"op": "update", "stage": stage, "details": details})

    def stop(self, stage: str, success: bool, details: JsonObject | None = None) -> bool:
        """Stops a running stage; a failing stop ends the plan (or completes a cancel)."""
        move: JsonObject = {"op": "stop", "stage": stage, "success": success}
        if details:
            move["details"] = details
        return self._send(move)

    def finish(self, tracker: str, success: bool) -> bool:
        """Finishes the overview or apply tracker."""
        return self._send({"op": "finish", "tracker": tracker, "success": success})

    def alive(self) -> bool:
        """Renews the runner's lease on the plan without changing it (Herald emits nothing)."""
        return self._send({"op": "alive"})

    def dates(self, start: str | None, end: str | None) -> bool:
        """Sets the plan's resolved start and end dates on the open trackers."""
        return self._send({"op": "dates", "start": start, "end": end})

    def open_apply(self) -> None:
        """Records that the apply tracker is the open one (after the overview succeeded)."""
        with self._lock:
            self._open_tracker = "apply"

    def fail(self) -> None:
        """Ends the plan at Herald with a failure: stops the running stage with ``success: false``, or
        fails the open tracker. While Herald is cancelling, this completes the cancel."""
        with self._lock:
            if self._ended:
                return
            if self._running is not None:
                self.stop(self._running, False)
            elif self._open_tracker is not None:
                self.finish(self._open_tracker, False)
            self._ended = True

    def close(self) -> None:
        """Stops the keepalive."""
        self._closed.set()

    def _send(self, move: JsonObject) -> bool:
        ending = move.get("success") is False
        with self._lock:
            if self._ended or (self.should_stop() and not ending):
                return False
            try:
                status, answer = self._client.post(move)
            except HeraldError as error:
                log.error("%s", error)
                self._refused = str(error)
                return False
            self._last_post = time.monotonic()
            if status == 409:
                self._refused = str(answer.get("message") or answer)
                # While cancelling, Herald refuses every move but the failing stop, saying so in
                # the message; the event stream may not have delivered plan-cancel yet.
                self._cancelling = self._cancelling or CANCELLING_MESSAGE in self._refused
                log.warning("Herald refused %s: %s", move, self._refused)
                return False
            self._cancelling = bool(answer.get("cancelling"))
            self._claimed = True
            self._track(move)
            return True

    def _track(self, move: JsonObject) -> None:
        op = move["op"]
        if op == "start":
            self._running = move["stage"]
        elif op == "stop":
            self._running = None
        elif op == "finish":
            self._running = None
            self._open_tracker = None
        if move.get("success") is False:
            self._ended = True

    def _keep_alive(self) -> None:
        # Every accepted move renews the runner's lease on the plan (HERALD_PLAN_LEASE_S); while
        # SQLMesh works without progress to report (one long batch, loading a big project), the
        # runner says it is alive every keepalive_s.
        while not self._closed.wait(self._keepalive_s / 4):
            with self._lock:
                due = self._claimed and time.monotonic() - self._last_post >= self._keepalive_s
            if due:
                self.alive()
