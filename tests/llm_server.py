"""A scripted OpenAI-compatible chat server for tests: real HTTP, no network beyond 127.0.0.1.

The server answers POST /v1/chat/completions (and /chat/completions) from a script, one turn
per request, in order, and records every request body for assertions:

    with ScriptedLLM([tool_call("funnel", period="all"), text("Conversion is 17.8%.")]) as llm:
        chat = make_llm(Settings(openai_base_url=llm.base_url, openai_api_key="test", model="scripted"))
        ...
        llm.requests[1]["messages"]   # what the client sent on its second call

A turn is one of

- `ToolCalls([Call(name, arguments), ...])`: an assistant message with tool calls; `arguments`
  is a dict (sent as JSON) or a raw string (sent as is, e.g. malformed JSON);
- `Text(content)`: an assistant message without tool calls;
- `Error(status)`: an HTTP error with an OpenAI-style error body;
- `Delay(seconds, then)`: wait, then reply with `then` (to trip the client's timeout);
- `Garbage(body)`: a 200 response whose body is not JSON;
- `Raw(payload)`: a JSON payload sent exactly as given (a completion missing a field, say);
- a callable `(request_body) -> turn`, for replies that depend on the request.

Shorthands: a `str` is `Text`, an `int` is `Error`; `tool_call(name, **args)`, `tool_calls(...)`,
`text(...)`, `error(...)`, `delay(...)` and `garbage(...)` build turns. When the script runs out,
`after` answers (default: a 500 saying so), so a client that calls more often than scripted
fails loudly instead of hanging. `stream: true` requests get the same turn as server-sent events.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATHS = {"/v1/chat/completions", "/chat/completions"}


@dataclass
class Call:
    """One tool call of an assistant reply."""

    name: str
    arguments: dict | str = field(default_factory=dict)
    id: str | None = None


@dataclass
class ToolCalls:
    """An assistant reply that calls tools (optionally with some text)."""

    calls: list[Call]
    content: str | None = None


@dataclass
class Text:
    """An assistant reply with text only."""

    content: str
    finish_reason: str = "stop"


@dataclass
class Error:
    """An HTTP error status with an OpenAI-style error body (or `body` as given)."""

    status: int = 500
    message: str = "scripted server error"
    body: str | None = None


@dataclass
class Delay:
    """Wait `seconds` (or until the server stops), then reply with `then`."""

    seconds: float
    then: Turn = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.then is None:
            self.then = Text("(late reply)")


@dataclass
class Garbage:
    """A 200 response whose body is not JSON."""

    body: bytes = b"<html><body>502 Bad Gateway (not JSON)</body>"
    content_type: str = "application/json"


@dataclass
class Raw:
    """A JSON payload sent as is, with `status`."""

    payload: dict | list
    status: int = 200


Turn = ToolCalls | Text | Error | Delay | Garbage | Raw | str | int | Callable[[dict], Any]


def tool_call(name: str, arguments: dict | str | None = None, /, **args: Any) -> ToolCalls:
    """A reply with one tool call: `tool_call("funnel", period="all")` or `tool_call("x", "{raw")`."""
    return ToolCalls([Call(name, arguments if arguments is not None else args)])


def tool_calls(*calls: Call | tuple[str, dict | str]) -> ToolCalls:
    """A reply with several tool calls: `tool_calls(("funnel", {}), ("dropoffs", {"period": "all"}))`."""
    return ToolCalls([c if isinstance(c, Call) else Call(*c) for c in calls])


def text(content: str) -> Text:
    return Text(content)


def error(status: int = 500, message: str = "scripted server error") -> Error:
    return Error(status, message)


def delay(seconds: float, then: Turn | None = None) -> Delay:
    return Delay(seconds, then)  # type: ignore[arg-type]


def garbage(body: bytes = Garbage.body, content_type: str = "application/json") -> Garbage:
    return Garbage(body, content_type)


class ScriptedLLM:
    """The server: start with `with ScriptedLLM(script) as llm:` (or start()/stop())."""

    def __init__(self, script: Iterable[Turn] = (), *, after: Turn | None = None, model: str = "scripted") -> None:
        self.script: list[Turn] = list(script)
        self.after: Turn = after if after is not None else Error(500, "script exhausted: no more scripted turns")
        self.model = model
        self.requests: list[dict] = []        # parsed JSON bodies of chat requests, in arrival order
        self.raw: list[tuple[str, str, bytes]] = []  # (method, path, body) of every request
        self.served: list[Turn] = []          # the turn answered for each chat request
        self.exhausted = 0                    # chat requests answered by `after`
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedLLM:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ script

    def push(self, *turns: Turn) -> None:
        """Append turns to the script (e.g. between two questions)."""
        with self._lock:
            self.script.extend(turns)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.script)

    def _next(self, body: dict) -> Turn:
        with self._lock:
            self.requests.append(body)
            if self.script:
                turn = self.script.pop(0)
            else:
                self.exhausted += 1
                turn = self.after
        while callable(turn) and not isinstance(turn, type):
            turn = turn(body)
        turn = _coerce(turn)
        with self._lock:
            self.served.append(turn)
        return turn

    # ------------------------------------------------------------------ helpers for assertions

    def messages(self, i: int = -1) -> list[dict]:
        """The messages of request `i`."""
        return self.requests[i]["messages"]

    def tool_names(self, i: int = 0) -> list[str]:
        """Names of the tools offered in request `i`."""
        return [t["function"]["name"] for t in self.requests[i].get("tools", [])]

    # ------------------------------------------------------------------ replies

    def completion(self, turn: ToolCalls | Text, body: dict) -> dict:
        message, finish = _message(turn, next(self._ids))
        prompt = len(json.dumps(body.get("messages", [])))
        completion = len(json.dumps(message))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "system_fingerprint": "fp_scripted",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt // 4, "completion_tokens": completion // 4,
                      "total_tokens": prompt // 4 + completion // 4},
        }

    def chunks(self, turn: ToolCalls | Text, body: dict) -> list[dict]:
        """The same reply as `chat.completion.chunk` events (for `stream: true`)."""
        full = self.completion(turn, body)
        message, finish = full["choices"][0]["message"], full["choices"][0]["finish_reason"]
        base = {k: full[k] for k in ("id", "created", "model", "system_fingerprint")} | {
            "object": "chat.completion.chunk"}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
        out = [base | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]},
               base | {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]}]
        if (body.get("stream_options") or {}).get("include_usage"):
            out.append(base | {"choices": [], "usage": full["usage"]})
        return out


def _coerce(turn: Any) -> Turn:
    if isinstance(turn, str):
        return Text(turn)
    if isinstance(turn, bool) or turn is None:
        raise TypeError(f"not a turn: {turn!r}")
    if isinstance(turn, int):
        return Error(turn)
    if isinstance(turn, (ToolCalls, Text, Error, Delay, Garbage, Raw)):
        return turn
    raise TypeError(f"not a turn: {turn!r}")


def _message(turn: ToolCalls | Text, n: int) -> tuple[dict, str]:
    if isinstance(turn, Text):
        return {"role": "assistant", "content": turn.content, "refusal": None}, turn.finish_reason
    calls = []
    for j, c in enumerate(turn.calls):
        arguments = c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments)
        calls.append({"id": c.id or f"call_{n}_{j}_{uuid.uuid4().hex[:8]}", "type": "function",
                      "function": {"name": c.name, "arguments": arguments}})
    return {"role": "assistant", "content": turn.content, "refusal": None, "tool_calls": calls}, "tool_calls"


class _Handler(BaseHTTPRequestHandler):
    server_owner: ScriptedLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server_owner.raw.append(("GET", self.path, b""))
        if self.path.rstrip("/") in {"/v1/models", "/models"}:
            self._json(200, {"object": "list", "data": [{"id": self.server_owner.model, "object": "model",
                                                          "created": 0, "owned_by": "tests"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        owner = self.server_owner
        owner.raw.append(("POST", self.path, raw))
        if self.path.split("?")[0].rstrip("/") not in PATHS:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
            return
        try:
            turn = owner._next(body)
        except Exception as exc:  # a broken script is the test's bug: say so in the reply
            self._json(500, {"error": {"message": f"script error: {type(exc).__name__}: {exc}",
                                       "type": "server_error"}})
            return
        self._reply(turn, body)

    def _reply(self, turn: Turn, body: dict) -> None:
        owner = self.server_owner
        if isinstance(turn, Delay):
            if owner._stopping.wait(turn.seconds):
                return
            turn = _coerce(turn.then)
        if isinstance(turn, Error):
            payload = turn.body if turn.body is not None else json.dumps(
                {"error": {"message": turn.message, "type": "server_error", "param": None, "code": None}})
            self._send(turn.status, payload.encode(), "application/json")
        elif isinstance(turn, Garbage):
            self._send(200, turn.body, turn.content_type)
        elif isinstance(turn, Raw):
            self._send(turn.status, json.dumps(turn.payload).encode(), "application/json")
        elif isinstance(turn, Delay):
            self._reply(turn, body)
        elif body.get("stream"):
            events = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in owner.chunks(turn, body))
            self._send(200, events + b"data: [DONE]\n\n", "text/event-stream")
        else:
            self._json(200, owner.completion(turn, body))

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass
