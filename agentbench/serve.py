"""`agentbench serve`: a local model behind the OpenAI chat-completions API.

Serves an `HFPolicy` (a registry model, a local directory or a hub id, with an optional adapter
and trait system prompt) at `/v1/models` and `/v1/chat/completions`, so that `HTTPPolicy`, or
any OpenAI-compatible client, can drive it exactly like a `vllm serve` endpoint. Supported
request fields: messages, temperature, top_p, max_tokens (or max_completion_tokens), seed,
stop, n=1. Streaming, tools and logprobs are not supported (a 400 says so).

Concurrent requests are batched: a worker thread takes every request queued within
`batch_window` seconds of the first (and any that queued while the model was busy), up to
`max_batch`, groups them by sampling parameters (seeds aside: they are per row) and decodes
each group as one batch. The `seed` of a request seeds that request's own generator, so the
same request with the same seed gives the same text whatever it was batched with (up to
floating-point effects of padding).

The server binds 127.0.0.1 unless told otherwise: it has no authentication.

Needs the `serve` extra (FastAPI, uvicorn).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbench.policies.base import CONTEXT_LENGTH_EXCEEDED, Generation, Message, SamplingParams

if TYPE_CHECKING:
    import socket

    from fastapi import FastAPI

    from agentbench.policies.hf import HFPolicy


class _TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_TextPart]

    def to_message(self) -> Message:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        role = "system" if self.role == "developer" else self.role
        return Message(role=role, content=text)


class ChatCompletionRequest(BaseModel):
    """The subset of the OpenAI request we honour. Any other field is refused with a 400 that
    names it (never silently ignored: a client that asks for frequency_penalty must not get
    a reply sampled without it)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    tools: list[Any] | None = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None
    """OpenAI's structured outputs: `{"type": "json_schema", "json_schema": {"schema": ...}}`
    decodes the reply inside that schema (`agentbench.policies.constrained`), `json_object`
    inside any JSON object, `text` (or none) freely."""

    def reply_schema(self) -> dict[str, Any] | None:
        """The JSON schema the reply is decoded inside; None for free text. Raises ValueError
        for a response_format it cannot honour."""
        fmt = self.response_format
        if fmt is None or fmt.get("type") == "text":
            return None
        if fmt.get("type") == "json_object":
            return {"type": "object"}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise ValueError("response_format.json_schema.schema must be a JSON object")
            from lmformatenforcer import JsonSchemaParser

            try:  # refused here, not halfway through a batch
                JsonSchemaParser(schema)
            except Exception as exc:
                raise ValueError(f"unsupported JSON schema: {type(exc).__name__}: {exc}") from None
            return schema
        raise ValueError(f"unsupported response_format type {fmt.get('type')!r}")

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
            seed=self.seed,
            stop=tuple(s for s in stops if s),
        )


class _APIError(Exception):
    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


@dataclass
class _Job:
    messages: list[Message]
    params: SamplingParams
    schema: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: Generation | None = None


class Batcher:
    """Gathers concurrent requests into batches for one policy (a single worker thread)."""

    def __init__(self, policy: HFPolicy, *, max_batch: int = 32, batch_window: float = 0.05):
        if max_batch < 1 or batch_window < 0:
            raise ValueError("max_batch must be >= 1 and batch_window >= 0")
        self.policy, self.max_batch, self.batch_window = policy, max_batch, batch_window
        self.batch_sizes: list[int] = []
        """Sizes of the groups decoded so far (for tests and benchmarks)."""
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="agentbench-batcher", daemon=True)
        self._thread.start()

    def submit(
        self, messages: list[Message], params: SamplingParams, schema: dict[str, Any] | None = None
    ) -> Generation:
        """Generate one reply, batched with concurrent requests; inside `schema` if given."""
        job = _Job(messages, params, schema)
        self._queue.put(job)
        job.done.wait()
        assert job.result is not None
        return job.result

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            jobs, closing = [first], False
            deadline = time.monotonic() + self.batch_window
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    closing = True
                    break
                jobs.append(job)
            # Seeds and reply schemas are per row, so requests differing only in them share a
            # batch (a schema the parser rejects was refused at the request).
            groups: dict[SamplingParams, list[_Job]] = {}
            for job in jobs:
                key = job.params.model_copy(update={"seed": None})
                groups.setdefault(key, []).append(job)
            for params, group in groups.items():
                self._run(params, group)
            if closing:
                return

    def _run(self, params: SamplingParams, group: list[_Job]) -> None:
        self.batch_sizes.append(len(group))
        try:
            results = self.policy.generate_chats(
                [j.messages for j in group], params, [j.params.seed for j in group],
                [j.schema for j in group],
            )  # fmt: skip
        except Exception as exc:  # never leave a request waiting forever
            results = [
                Generation(text="", finish_reason="error", error=f"generation failed: {exc}")
            ] * len(group)
        for job, result in zip(group, results, strict=True):
            job.result = result
            job.done.set()


def create_app(
    policy: HFPolicy,
    model_name: str,
    *,
    default_max_tokens: int = 512,
    max_batch: int = 32,
    batch_window: float = 0.05,
) -> FastAPI:
    """The FastAPI application serving `policy` under the model id `model_name`.

    `app.state.batcher` is the request batcher (its thread stops when the app shuts down).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    batcher = Batcher(policy, max_batch=max_batch, batch_window=batch_window)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    app = FastAPI(title="agentbench serve", version="1", lifespan=lifespan)
    app.state.batcher = batcher
    created = int(time.time())

    def error_response(
        status: int, message: str, kind: str, code: str | None = None
    ) -> JSONResponse:
        body = {"error": {"message": message, "type": kind, "code": code or status}}
        return JSONResponse(status_code=status, content=body)

    @app.exception_handler(_APIError)
    async def api_error(_: Request, exc: _APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.kind, exc.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        unsupported = [str(e["loc"][-1]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unsupported:  # OpenAI's shape, with the parameter named, not pydantic's text
            names = ", ".join(sorted(set(unsupported)))
            return error_response(
                400, f"unsupported parameter(s): {names}; agentbench serve does not implement "
                "them", "invalid_request_error", "unsupported_parameter",
            )  # fmt: skip
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'] if x != 'body')}: {e['msg']}" for e in exc.errors()
        )
        return error_response(400, f"invalid request: {problems}", "invalid_request_error")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        prov = policy.provenance(SamplingParams())
        return {
            "object": "list",
            "data": [
                {
                    "id": model_name,
                    "object": "model",
                    "created": created,
                    "owned_by": "agentbench",
                    "max_model_len": policy.max_context,
                    # Hashes only: lets a client record what produced its actions.
                    "agentbench": {
                        "model": prov.model,
                        "weights_sha256": prov.weights_sha256,
                        "adapter_sha256": prov.adapter_sha256,
                        "system_prompt_sha256": prov.system_prompt_sha256,
                    },
                }
            ],
        }

    @app.get("/v1/models/{model_id:path}")
    def retrieve_model(model_id: str) -> dict[str, Any]:
        if model_id != model_name:
            raise _APIError(404, f"The model `{model_id}` does not exist.", "NotFoundError",
                            "model_not_found")  # fmt: skip
        entry: dict[str, Any] = list_models()["data"][0]
        return entry

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest) -> dict[str, Any]:
        # A sync endpoint: FastAPI runs it in a worker thread, which waits on the batcher.
        if request.model not in (None, model_name):
            raise _APIError(404, f"The model `{request.model}` does not exist.", "NotFoundError")
        if request.stream:
            raise _APIError(400, "stream=true is not supported")
        if request.n != 1:
            raise _APIError(400, "only n=1 is supported")
        if request.tools:
            raise _APIError(400, "tools are not supported: put tool specs in the messages")
        if request.logprobs:
            raise _APIError(400, "logprobs are not supported")
        asked = request.max_completion_tokens or request.max_tokens
        if asked is not None and asked >= policy.max_context:
            raise _APIError(
                400, f"max_tokens is {asked}, but this model's maximum context length is "
                f"{policy.max_context} tokens (prompt included)", code="invalid_value",
            )  # fmt: skip
        try:
            params = request.sampling(default_max_tokens)
        except ValidationError as exc:
            raise _APIError(400, f"invalid sampling parameters: {exc}") from None
        try:
            schema = request.reply_schema()
        except ValueError as exc:
            raise _APIError(400, str(exc)) from None
        messages = [m.to_message() for m in request.messages]
        generation = batcher.submit(messages, params, schema)
        if generation.finish_reason == "context":  # OpenAI's code for it, which clients read
            raise _APIError(
                400,
                f"This model's maximum context length is {policy.max_context} tokens; the "
                f"messages take {generation.prompt_tokens} tokens, leaving no room for a reply",
                code=CONTEXT_LENGTH_EXCEEDED,
            )
        if generation.finish_reason == "error":
            failed = (generation.error or "").startswith("generation failed")
            raise _APIError(
                500 if failed else 400,
                generation.error or "generation failed",
                "InternalServerError" if failed else "invalid_request_error",
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": generation.text},
                    "finish_reason": generation.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
                "total_tokens": generation.prompt_tokens + generation.completion_tokens,
            },
        }

    return app


def make_server(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning"
) -> Any:
    """A `uvicorn.Server` for `app` (call `.run()`, or `.run(sockets=[...])` on a bound
    socket; set `.should_exit = True` to stop it)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    return uvicorn.Server(config)


def serve_socket(app: FastAPI, sock: socket.socket) -> Any:
    """A server ready to `.run(sockets=[sock])` on an already bound socket (tests, port 0)."""
    host, port = sock.getsockname()[:2]
    return make_server(app, host=host, port=port)
