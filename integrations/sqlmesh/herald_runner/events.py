"""A small Server-Sent Events client: a push parser and a subscription that reconnects.

Only the standard library: the runner must not need more than SQLMesh brings.
"""

from __future__ import annotations

import http.client
import logging
import threading
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One dispatched event: its type (``message`` when unnamed), data and the last event id."""

    event: str
    data: str
    id: str


class EventParser:
    """A push parser for ``text/event-stream`` (WHATWG HTML, "Parsing an event stream").

    Feed it bytes as they arrive, in any split; it returns the events completed so far. Lines end at
    CRLF, LF or CR; a CR at the end of a chunk waits for the next chunk, which may begin with its LF.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False
        self._first_line = True
        self._event = ""
        self._data: list[str] = []
        self._last_id = ""

    def feed(self, chunk: bytes) -> list[Event]:
        """Parses ``chunk`` and returns the events it completed."""
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        self._buffer += chunk
        events: list[Event] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, width = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            if width == 1 and self._buffer[end : end + 1] == b"\r" and end + 1 == len(self._buffer):
                self._skip_lf = True  # a CR that may be the first half of a CRLF split across chunks
            self._buffer = self._buffer[end + width :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> Event | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Event(event=event or "message", data="\n".join(data), id=self._last_id)


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the first line of ``buffer`` ends and how wide its terminator is, or None if no line ends yet."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, 1)
    if buffer[cr + 1 : cr + 2] == b"\n":
        return cr, 2
    return cr, 1


class Subscription:
    """Follows an SSE endpoint on a background thread, reconnecting after every cut.

    Each reconnect starts without ``Last-Event-ID``: Herald's SQLMesh stream then sends the current
    trackers first, which is all a plan runner needs to catch up.
    """

    def __init__(
        self,
        url: str,
        token: str,
        on_event: t.Callable[[Event], None],
        idle_timeout_s: float = 60.0,
        retry_s: float = 1.0,
    ) -> None:
        self._url = urlsplit(url)
        self._token = token
        self._on_event = on_event
        self._idle_timeout_s = idle_timeout_s
        self._retry_s = retry_s
        self._stopped = threading.Event()
        self._connected = threading.Event()
        self._connection: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="herald-events", daemon=True)

    def start(self) -> None:
        """Starts following the stream."""
        self._thread.start()

    def wait_connected(self, timeout_s: float) -> bool:
        """Waits until the first response arrived with 200; True if it did within ``timeout_s``."""
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        """Stops following and closes the connection."""
        self._stopped.set()
        connection = self._connection
        if connection is not None:
            connection.close()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._follow_once()
            except (OSError, http.client.HTTPException, AttributeError) as error:
                # AttributeError: http.client's answer to reading a response whose connection
                # stop() closed from another thread.
                if self._stopped.is_set():
                    return
                log.info("event stream cut (%s); reconnecting", error)
            self._stopped.wait(self._retry_s)

    def _follow_once(self) -> None:
        factory = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        connection = factory(self._url.netloc, timeout=self._idle_timeout_s)
        self._connection = connection
        try:
            path = self._url.path + (f"?{self._url.query}" if self._url.query else "")
            connection.request(
                "GET",
                path,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "text/event-stream"},
            )
            response = connection.getresponse()
            if response.status != 200:
                body = response.read(4096).decode("utf-8", errors="replace")
                log.warning("event stream answered %s: %s", response.status, body)
                return
            self._connected.set()
            parser = EventParser()
            while not self._stopped.is_set():
                chunk = response.read1(64 * 1024)
                if not chunk:
                    return
                for event in parser.feed(chunk):
                    self._on_event(event)
        finally:
            connection.close()
            self._connection = None

