"""A small stand-in for Home Assistant's REST API (stdlib HTTP server in a thread), for fast tests.

The real thing is exercised in test_home_assistant_real.py; this one can fail on purpose.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-token-0123456789abcdef"


@dataclass
class FakeHomeAssistant:
    """States, recorded service calls, and failures to serve next."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    requests: int = 0
    fail_next: list[int] = field(default_factory=list)
    """HTTP status codes to answer the next requests with, in order."""
    delay_seconds: float = 0.0
    url: str = ""
    _handler: type[BaseHTTPRequestHandler] | None = field(default=None, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def up(self) -> None:
        """Serve (again, on the same port after :meth:`down`)."""
        assert self._handler is not None and self._server is None
        port = int(self.url.rsplit(":", 1)[1]) if self.url else 0
        server = ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def down(self) -> None:
        """Stop serving: connections are refused, as when Home Assistant is off or restarting."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def fake_home_assistant(*, keep_alive: bool = False) -> Iterator[FakeHomeAssistant]:
    """Serve on a free loopback port; ``keep_alive`` keeps connections open as Home Assistant's server does."""
    fake = FakeHomeAssistant(states={"light.kitchen": {"entity_id": "light.kitchen", "state": "off"}})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            fake.requests += 1
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if fake.delay_seconds:
                time.sleep(fake.delay_seconds)
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._reply(401, {"message": "Unauthorized"})
            if fake.fail_next:
                return self._reply(fake.fail_next.pop(0), {"message": "failing on purpose"})
            path = self.path.split("?")[0]
            if method == "GET" and path == "/api/":
                return self._reply(200, {"message": "API running."})
            if method == "GET" and path == "/api/states":
                return self._reply(200, [_full(s) for s in fake.states.values()])
            if method == "GET" and path.startswith("/api/states/"):
                state = fake.states.get(path.removeprefix("/api/states/"))
                return self._reply(200, _full(state)) if state else self._reply(404, {"message": "Entity not found."})
            if method == "POST" and path == "/api/conversation/process":
                fake.calls.append(("conversation", "process", body))
                speech = {"plain": {"speech": "已打开厨房灯", "extra_data": None}}
                return self._reply(200, {"response": {"speech": speech, "response_type": "action_done"}})
            if method == "POST" and path.startswith("/api/services/"):
                domain, service = path.removeprefix("/api/services/").split("/")
                if domain == "nope":
                    return self._reply(400, {"message": f"Service {domain}.{service} not found."})
                fake.calls.append((domain, service, body))
                changed = []
                for entity_id in [body.get("entity_id")] if isinstance(body.get("entity_id"), str) else []:
                    if entity_id in fake.states and service in ("turn_on", "turn_off"):
                        fake.states[entity_id]["state"] = service.removeprefix("turn_")
                        changed.append(_full(fake.states[entity_id]))
                return self._reply(200, changed)
            return self._reply(404, {"message": "Not found"})

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    if keep_alive:
        Handler.protocol_version = "HTTP/1.1"
    fake._handler = Handler
    fake.up()
    try:
        yield fake
    finally:
        fake.down()


def _full(state: dict[str, Any]) -> dict[str, Any]:
    now = "2026-01-01T00:00:00+00:00"
    return {
        "attributes": {},
        "last_changed": now,
        "last_updated": now,
        "context": {"id": "x", "parent_id": None, "user_id": None},
        **state,
    }


def main(argv: list[str]) -> int:
    """Serve in its own process, so a soak measures the daemon without the server's threads and sockets.

    Run: python -m support.fake_home_assistant ['{"lock.front_door": {"state": "locked"}}']. Prints the base URL
    on one line and serves until its stdin closes (its parent ended).
    """
    with fake_home_assistant(keep_alive=True) as fake:
        for entity_id, state in (json.loads(argv[0]) if argv else {}).items():
            fake.states[entity_id] = {"entity_id": entity_id, **state}
        print(fake.url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
