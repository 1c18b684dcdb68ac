"""Interop: the Python client (durable-streams on PyPI) appends COUNT JSON messages through its
IdempotentProducer to DS_URL while the test kills and restarts `wrangler dev`.

The client itself does not retry network errors, so its httpx client gets a transport that does what
an application's retry layer would: re-send the same request (same Producer-Id, Producer-Epoch and
Producer-Seq) until the server answers. Herald must store each batch once. Prints "progress <n>" after
each flushed message and "done" at the end.
"""

import asyncio
import json
import os

import httpx
from durable_streams import IdempotentProducer


class RetryingTransport(httpx.AsyncBaseTransport):
    """Re-sends a request on connection errors and 5xx answers, with a short backoff."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        delay = 0.1
        for _ in range(600):
            try:
                retry = httpx.Request(request.method, request.url, headers=request.headers, content=body)
                response = await self._inner.handle_async_request(retry)
                if response.status_code < 500:
                    return response
                await response.aclose()
            except httpx.TransportError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise RuntimeError("the server never answered")

    async def aclose(self) -> None:
        await self._inner.aclose()


async def main() -> None:
    url = os.environ["DS_URL"]
    count = int(os.environ.get("COUNT", "60"))
    headers = {"Authorization": f"Bearer {os.environ['DS_TOKEN']}"}
    async with httpx.AsyncClient(transport=RetryingTransport(), headers=headers, timeout=30.0) as client:
        created = await client.put(url, headers={"content-type": "application/json"})
        assert created.status_code in (200, 201), created.status_code
        producer = IdempotentProducer(
            url,
            "py-interop",
            client=client,
            epoch=0,
            linger_ms=0,
            max_in_flight=1,
            content_type="application/json",
        )
        for i in range(count):
            producer.append(json.dumps({"client": "py", "n": i}))
            await producer.flush()
            print(f"progress {i + 1}", flush=True)
        print("done", flush=True)


asyncio.run(main())
