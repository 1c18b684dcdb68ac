"""Interop: the Python client (durable-streams 0.1.0 on PyPI) appends COUNT JSON messages to DS_URL as
an idempotent producer while the test kills and restarts `wrangler dev`.

The PyPI release has no producer class (the repository's client has one, unreleased), so this uses its
`DurableStream` with the protocol's producer headers: `Producer-Id` and `Producer-Epoch` fixed, and
`Producer-Seq` a header callable (the client resolves callables per request) that gives the number of
the message being appended. The client does not retry network errors itself, so its httpx client gets
a transport that does what an application's retry layer would: re-send the same request (same
producer headers) on connection errors and 5xx until the server answers. Herald must store each
message once. Prints "progress <n>" after each appended message and "done" at the end.
"""

import os
import time

import httpx
from durable_streams import DurableStream


class RetryingTransport(httpx.BaseTransport):
    """Re-sends a request on connection errors and 5xx answers, with a short backoff."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        delay = 0.1
        for _ in range(600):
            try:
                retry = httpx.Request(request.method, request.url, headers=request.headers, content=body)
                response = self._inner.handle_request(retry)
                if response.status_code < 500:
                    return response
                response.close()
            except httpx.TransportError:
                pass
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise RuntimeError("the server never answered")

    def close(self) -> None:
        self._inner.close()


def main() -> None:
    url = os.environ["DS_URL"]
    count = int(os.environ.get("COUNT", "60"))
    current = {"seq": 0}
    headers = {
        "Authorization": f"Bearer {os.environ['DS_TOKEN']}",
        "Producer-Id": "py-interop",
        "Producer-Epoch": "0",
        "Producer-Seq": lambda: str(current["seq"]),
    }
    client = httpx.Client(transport=RetryingTransport(), timeout=30.0)
    created = client.put(
        url,
        headers={"Authorization": headers["Authorization"], "content-type": "application/json"},
    )
    assert created.status_code in (200, 201), created.status_code
    stream = DurableStream(
        url, headers=headers, content_type="application/json", client=client, batching=False
    )
    for i in range(count):
        current["seq"] = i
        stream.append({"client": "py", "n": i})
        print(f"progress {i + 1}", flush=True)
        time.sleep(int(os.environ.get("PACE_MS", "0")) / 1000)
    print("done", flush=True)


main()
