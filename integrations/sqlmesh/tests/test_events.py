"""The SSE push parser: every vector fed whole, a byte at a time, and split at every index."""

import unittest

from herald_runner.events import Event, EventParser


def feed_all(chunks: list[bytes]) -> list[Event]:
    parser = EventParser()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def splits(stream: bytes) -> list[list[bytes]]:
    """The stream whole, a byte at a time, and cut in two at every index."""
    ways = [[stream], [stream[i : i + 1] for i in range(len(stream))]]
    ways.extend([stream[:i], stream[i:]] for i in range(1, len(stream)))
    return ways


VECTORS: list[tuple[bytes, list[Event]]] = [
    (b"event: plan-apply\ndata: {}\n\n", [Event("plan-apply", "{}", "")]),
    (b"id: 1-1\nevent: x\ndata: a\ndata: b\n\n", [Event("x", "a\nb", "1-1")]),
    (b"data: crlf\r\n\r\ndata: cr\r\rdata: lf\n\n", [Event("message", "crlf", ""), Event("message", "cr", ""), Event("message", "lf", "")]),
    (b": comment\nretry: 3000\n\n", []),
    (b"\xef\xbb\xbfdata:no space\n\n", [Event("message", "no space", "")]),
    (b"id: 7-1\ndata: a\n\nevent: ping\ndata: b\n\n", [Event("message", "a", "7-1"), Event("ping", "b", "7-1")]),
    (b"data: incomplete\n", []),
    (b"event: empty\n\n", []),
]


class EventParserTest(unittest.TestCase):
    def test_vectors_in_every_split(self) -> None:
        for stream, expected in VECTORS:
            for chunks in splits(stream):
                with self.subTest(stream=stream, chunks=chunks):
                    self.assertEqual(feed_all(chunks), expected)

    def test_a_cr_split_from_its_lf_is_one_line_end(self) -> None:
        parser = EventParser()
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b"\n\r"), [Event("message", "a", "")])
        self.assertEqual(parser.feed(b"\ndata: b\n\n"), [Event("message", "b", "")])


if __name__ == "__main__":
    unittest.main()
