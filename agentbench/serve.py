"""`agentbench serve`: a local model behind the OpenAI chat-completions API.

Serves an `HFPolicy` (a registry model, a local directory or a hub id, with an optional adapter
and trait system prompt) at `/v1/models` and `/v1/chat/completions`, so that `HTTPPolicy`, or
any OpenAI-compatible client (the official `openai` package included), can drive it like a
`vllm serve` endpoint. Supported request fields: messages, temperature, top_p, max_tokens (or
max_completion_tokens), seed, stop, n, stream (with stream_options.include_usage), logprobs,
top_logprobs, response_format, and vLLM's return_tokens_as_token_ids. Any other field is
refused with a 400 in OpenAI's error shape that names it (never silently ignored).

Scheduling (`Batcher`, one worker thread): requests queued within `batch_window` seconds of
each other (up to `max_batch`) are grouped by sampling parameters (seeds aside: they are per
row) and each group becomes one batched `Decoding`. The worker advances every running group by
one token in turn, admitting newly queued requests between steps, so a short request sent
behind a long one is decoded beside it instead of after it, and a request returns as soon as
its own rows finish. Every step checks a cancel flag per row: a client that disconnects (a
timeout, a closed stream) stops its rows at the next step.

The `seed` of a request seeds that request's own generator (choice j > 0 of `n` gets
`choice_seed(seed, j)`), so the same request with the same seed gives the same text whatever
it was batched with (up to floating-point effects of padding). Log-probabilities are the
model's own (log-softmax of its logits, before temperature, top_p and any schema mask), as
vLLM reports them by default.

The server binds 127.0.0.1 unless told otherwise: it has no authentication.

Needs the `serve` extra (FastAPI, uvicorn).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentbench.policies.base import (
    CONTEXT_LENGTH_EXCEEDED,
    Generation,
    Message,
    SamplingParams,
    turn_seed,
)

if TYPE_CHECKING:
    import socket

    from fastapi import FastAPI, Request

    from agentbench.policies.hf import Decoding, HFPolicy, TokenLogprob

MAX_TOP_LOGPROBS = 20  # OpenAI's limit
MAX_N = 128  # OpenAI's limit


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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    """Send a last chunk with the usage (and `usage: null` on the others), as OpenAI does."""


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
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    return_tokens_as_token_ids: bool = False
    """vLLM's extension: logprob tokens written `token_id:<id>` (exact ids, no re-tokenizing)."""
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
        code: str | None = None, param: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.param = param

    def body(self) -> dict[str, Any]:
        """OpenAI's error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code or self.status,
            }
        }


_KINDS = {
    "int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
    "list": "a list", "dict": "an object", "model_attributes": "an object",
}  # fmt: skip


def request_error(errors: Sequence[Any]) -> _APIError:
    """OpenAI's 400 for a request the schema refuses, in our own words (pydantic's own
    messages and its union-branch names never reach the client)."""
    unsupported = [_param(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if unsupported:
        names = ", ".join(sorted(set(unsupported)))
        return _APIError(
            400, f"unsupported parameter(s): {names}; agentbench serve does not implement them",
            code="unsupported_parameter", param=unsupported[0],
        )  # fmt: skip
    problems = list(dict.fromkeys(_describe(e) for e in errors))  # unions repeat a field
    first = _param(errors[0]["loc"]) if errors else ""
    return _APIError(
        400, "invalid request: " + "; ".join(problems), code="invalid_value", param=first or None
    )


def _param(loc: Sequence[Any]) -> str:
    """A field's dotted name (`messages.0.role`), without the body and union-branch parts."""
    names: list[str] = []
    for part in loc:
        if part == "body" and not names:
            continue
        if isinstance(part, str) and (
            "[" in part or "-" in part or part in {"str", "int", "float", "bool", "list", "dict"}
        ):
            break  # pydantic's name of a union branch: the field is named already
        names.append(str(part))
    return ".".join(names)


def _describe(error: Any) -> str:
    """One refused value in words."""
    name, kind, ctx = _param(error["loc"]) or "the body", str(error["type"]), error.get("ctx") or {}
    bounds = {
        "less_than_equal": ("at most", "le"), "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"), "greater_than": ("greater than", "gt"),
    }  # fmt: skip
    if kind in bounds:
        words, key = bounds[kind]
        return f"{name} must be {words} {ctx.get(key)} (got {error.get('input')!r})"
    if kind == "missing":
        return f"{name} is required"
    if kind == "too_short":
        return f"{name} must not be empty"
    if kind == "literal_error":
        return f"{name} must be one of {ctx.get('expected')} (got {error.get('input')!r})"
    if kind in ("json_invalid", "json_type"):
        return "the body is not a JSON object"
    base = kind.removesuffix("_type").removesuffix("_parsing")
    if base in _KINDS:
        return f"{name} must be {_KINDS[base]}"
    return f"{name} is not valid ({kind})"


def choice_seed(seed: int | None, choice: int) -> int | None:
    """The seed of choice `choice` of a request (choice 0 keeps the request's own seed, so
    `n=1` samples what it always did)."""
    if seed is None or choice == 0:
        return seed
    return turn_seed(seed, "choice", choice)


@dataclass(frozen=True)
class Cancellation:
    """A request whose client went away: tokens generated for it when the server noticed,
    and in all (the difference is what decoding cost after the disconnect)."""

    tokens_at_cancel: int
    tokens_generated: int
    max_tokens: int


@dataclass
class Choice:
    """One finished choice of a request."""

    generation: Generation
    logprobs: list[dict[str, Any]] | None = None
    """OpenAI's `logprobs.content` entries, when asked for."""


Event = tuple[Any, ...]
"""What the worker tells a request: ("start",), ("delta", choice, text, entries),
("end", choice, finish_reason) (streaming only), ("done",)."""


@dataclass
class Job:
    """One chat-completions request in the batcher (its `n` choices are rows of a batch)."""

    messages: list[Message]
    params: SamplingParams
    schema: dict[str, Any] | None = None
    n: int = 1
    top_logprobs: int | None = None
    """None: no log-probabilities; k: the sampled token's and the k likeliest."""
    token_ids: bool = False
    """Write logprob tokens as `token_id:<id>` (vLLM's return_tokens_as_token_ids)."""
    stream: bool = False
    notify: Callable[[Event], object] | None = None
    """Called from the worker thread with every event (thread-safe on the caller's side)."""
    done: threading.Event = field(default_factory=threading.Event)
    choices: list[Choice] = field(default_factory=list)
    cancelled: bool = False
    decoding: Decoding | None = None
    first_row: int = 0
    tokens_at_cancel: int = 0
    emitted: list[str] = field(default_factory=list)
    emitted_logprobs: list[int] = field(default_factory=list)
    ended: list[bool] = field(default_factory=list)

    def rows(self) -> range:
        return range(self.first_row, self.first_row + self.n)

    def tokens_so_far(self) -> int:
        decoding = self.decoding
        if decoding is None:
            return 0
        return sum(len(decoding.tokens(i)) for i in self.rows())

    def cancel(self) -> None:
        """The client has gone: stop its rows at their next step (any thread)."""
        if not self.done.is_set() and not self.cancelled:
            self.tokens_at_cancel = self.tokens_so_far()
            self.cancelled = True

    def emit(self, event: Event) -> None:
        if self.notify is not None:
            # RuntimeError: the request's event loop has closed, nobody listens.
            with suppress(RuntimeError):
                self.notify(event)


@dataclass
class _Group:
    decoding: Decoding
    jobs: list[Job]


class Batcher:
    """Schedules requests onto one policy (a single worker thread; see the module docstring).

    `submit` (blocking) or `enqueue` (events through `Job.notify`) a job; `close` stops the
    worker and fails what it had not finished.
    """

    def __init__(self, policy: HFPolicy, *, max_batch: int = 32, batch_window: float = 0.05):
        if max_batch < 1 or batch_window < 0:
            raise ValueError("max_batch must be >= 1 and batch_window >= 0")
        self.policy, self.max_batch, self.batch_window = policy, max_batch, batch_window
        self.batch_sizes: list[int] = []
        """Requests per group started so far (for tests and benchmarks)."""
        self.cancellations: list[Cancellation] = []
        """Requests cancelled by their clients, in the order they stopped."""
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._groups: list[_Group] = []
        self._token_text: dict[int, str] = {}
        self._thread = threading.Thread(target=self._loop, name="agentbench-batcher", daemon=True)
        self._thread.start()

    @property
    def running(self) -> int:
        """Requests being decoded now."""
        return sum(not job.done.is_set() for group in list(self._groups) for job in group.jobs)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def enqueue(self, job: Job) -> None:
        job.emitted, job.emitted_logprobs, job.ended = [""] * job.n, [0] * job.n, [False] * job.n
        self._queue.put(job)

    def submit(
        self, messages: list[Message], params: SamplingParams, schema: dict[str, Any] | None = None
    ) -> Generation:
        """Generate one reply, batched with concurrent requests; inside `schema` if given."""
        job = Job(messages, params, schema)
        self.enqueue(job)
        job.done.wait()
        return job.choices[0].generation

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    # -- the worker ------------------------------------------------------------------------

    def _loop(self) -> None:
        jobs: list[Job] = []
        try:
            while True:
                jobs, closing = self._intake(block=not self._groups)
                if closing:
                    return
                self._admit(jobs)
                jobs = []
                for group in list(self._groups):
                    self._step(group)
        finally:  # also when a bug raised: no request waits forever
            self._fail_all("the server is shutting down", jobs)

    def _intake(self, *, block: bool) -> tuple[list[Job], bool]:
        """Queued jobs (waiting for the first, then `batch_window`, when nothing runs);
        whether `close` was called."""
        jobs: list[Job] = []
        if block:
            first = self._queue.get()
            if first is None:
                return jobs, True
            jobs.append(first)
        deadline = time.monotonic() + (self.batch_window if block else 0.0)
        while len(jobs) < self.max_batch:
            try:
                timeout = deadline - time.monotonic()
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _admit(self, jobs: list[Job]) -> None:
        """Start a batched decoding per group of sampling parameters."""
        groups: dict[SamplingParams, list[Job]] = {}
        for job in jobs:
            if job.cancelled:  # gone before it started
                self._finish(job, [_cancelled()] * job.n)
                continue
            groups.setdefault(job.params.model_copy(update={"seed": None}), []).append(job)
        for params, group in groups.items():
            self.batch_sizes.append(len(group))
            chats: list[list[Message]] = []
            seeds: list[int | None] = []
            schemas: list[dict[str, Any] | None] = []
            tops: list[int | None] = []
            for job in group:
                job.first_row = len(chats)
                for choice in range(job.n):
                    chats.append(job.messages)
                    seeds.append(choice_seed(job.params.seed, choice))
                    schemas.append(job.schema)
                    tops.append(job.top_logprobs)
            try:
                decoding = self.policy.start(
                    chats, params, seeds, schemas if any(schemas) else None, top_logprobs=tops,
                    interleave=True,
                )  # fmt: skip
            except Exception as exc:  # never leave a request waiting forever
                for job in group:
                    self._finish(job, [_failed(exc)] * job.n)
                continue
            for job in group:
                job.decoding = decoding
                job.emit(("start",))
            self._groups.append(_Group(decoding, group))

    def _step(self, group: _Group) -> None:
        """One token step of a group; then tell its requests what changed."""
        decoding = group.decoding
        for job in group.jobs:
            if job.cancelled and not job.done.is_set():
                for row in job.rows():
                    decoding.cancel(row)
        try:
            running = decoding.step()
        except Exception as exc:  # Decoding fails rows itself; this is a bug guard
            running = False
            for job in group.jobs:
                if not job.done.is_set():
                    self._finish(job, [_failed(exc)] * job.n)
        for job in group.jobs:
            if job.done.is_set():
                continue
            if job.stream and not job.cancelled:
                self._stream(job, decoding)
            if not running or all(decoding.finished(row) for row in job.rows()):
                self._finish(job, [decoding.generation(row) for row in job.rows()])
        if not running:
            self._groups.remove(group)

    def _stream(self, job: Job, decoding: Decoding) -> None:
        """Send each choice's new text (and logprobs), holding back what a stop string may
        still cut and an incomplete character."""
        hold = max((len(s) for s in job.params.stop), default=1) - 1
        for choice, row in enumerate(job.rows()):
            if job.ended[choice]:
                continue
            finished = decoding.finished(row)
            generation = decoding.generation(row) if finished else None
            if generation is not None and not generation.generated:
                job.ended[choice] = True  # the "done" event carries the error
                continue
            text = decoding.text(row)
            if generation is None:
                text = text[: len(text) - hold].rstrip("\ufffd")
            emitted = job.emitted[choice]
            # A token may re-spell the text before it (rare): then wait for the next.
            delta = text[len(emitted) :] if text.startswith(emitted) else ""
            entries: list[dict[str, Any]] = []
            if job.top_logprobs is not None:
                new = decoding.logprobs(row)[job.emitted_logprobs[choice] :]
                entries = [self._entry(lp, job.token_ids) for lp in new]
                job.emitted_logprobs[choice] += len(new)
            if delta or entries:
                job.emitted[choice] = emitted + delta
                job.emit(("delta", choice, delta, entries))
            if generation is not None:
                job.ended[choice] = True
                job.emit(("end", choice, generation.finish_reason))

    def _finish(self, job: Job, generations: list[Generation]) -> None:
        decoding = job.decoding
        choices = []
        for row, generation in zip(job.rows(), generations, strict=True):
            entries = None
            if job.top_logprobs is not None and decoding is not None:
                entries = [self._entry(lp, job.token_ids) for lp in decoding.logprobs(row)]
            choices.append(Choice(generation, entries))
        job.choices = choices
        if job.cancelled:
            self.cancellations.append(
                Cancellation(job.tokens_at_cancel, job.tokens_so_far(), job.params.max_new_tokens)
            )
        job.done.set()
        job.emit(("done",))

    def _fail_all(self, reason: str, jobs: list[Job]) -> None:
        failed = Generation(text="", finish_reason="error", error=reason)
        pending = [*jobs, *(job for group in self._groups for job in group.jobs)]
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                pending.append(job)
        for job in pending:
            if not job.done.is_set():
                self._finish(job, [failed] * job.n)
        self._groups.clear()

    def _entry(self, logprob: TokenLogprob, token_ids: bool) -> dict[str, Any]:
        """OpenAI's logprob entry of a sampled token, with its top alternatives."""

        def one(token: int, value: float) -> dict[str, Any]:
            text = f"token_id:{token}" if token_ids else self._text(token)
            return {"token": text, "logprob": value, "bytes": list(text.encode())}

        return {
            **one(logprob.token_id, logprob.logprob),
            "top_logprobs": [one(token, value) for token, value in logprob.top],
        }

    def _text(self, token: int) -> str:
        if token not in self._token_text:
            self._token_text[token] = str(self.policy.tokenizer.decode([token]))
        return self._token_text[token]


def _cancelled() -> Generation:
    return Generation(text="", finish_reason="error", error="cancelled")


def _failed(exc: Exception) -> Generation:
    return Generation(
        text="", finish_reason="error", error=f"generation failed: {type(exc).__name__}: {exc}"
    )


DISCONNECT_POLL_S = 0.05
"""How often a waiting request checks whether its client is still there."""


def make_job(
    request: ChatCompletionRequest, model_name: str, max_context: int, default_max_tokens: int
) -> Job:
    """The batcher job of a request. Raises `_APIError` (OpenAI's shape) for a request it
    cannot honour."""
    if request.model not in (None, model_name):
        raise _APIError(404, f"The model `{request.model}` does not exist.", "NotFoundError",
                        "model_not_found", "model")  # fmt: skip
    if request.tools:
        raise _APIError(400, "tools are not supported: put tool specs in the messages",
                        code="unsupported_parameter", param="tools")  # fmt: skip
    if request.top_logprobs is not None and not request.logprobs:
        raise _APIError(400, "top_logprobs needs logprobs=true", code="invalid_value",
                        param="top_logprobs")  # fmt: skip
    if request.stream_options is not None and not request.stream:
        raise _APIError(400, "stream_options is only allowed with stream=true",
                        code="invalid_value", param="stream_options")  # fmt: skip
    asked = request.max_completion_tokens or request.max_tokens
    if asked is not None and asked >= max_context:
        raise _APIError(
            400, f"max_tokens is {asked}, but this model's maximum context length is "
            f"{max_context} tokens (prompt included)", code="invalid_value", param="max_tokens",
        )  # fmt: skip
    try:
        params = request.sampling(default_max_tokens)
    except ValidationError as exc:
        raise _APIError(400, f"invalid sampling parameters: {exc}") from None
    try:
        schema = request.reply_schema()
    except ValueError as exc:
        raise _APIError(400, str(exc), code="invalid_value", param="response_format") from None
    return Job(
        messages=[m.to_message() for m in request.messages],
        params=params,
        schema=schema,
        n=request.n,
        top_logprobs=(request.top_logprobs or 0) if request.logprobs else None,
        token_ids=request.return_tokens_as_token_ids,
        stream=request.stream,
    )


def check_outcome(job: Job, max_context: int) -> None:
    """Raise the `_APIError` a finished job's failure calls for (none when it succeeded)."""
    for choice in job.choices:
        generation = choice.generation
        if generation.finish_reason == "context":  # OpenAI's code for it, which clients read
            raise _APIError(
                400,
                f"This model's maximum context length is {max_context} tokens; the "
                f"messages take {generation.prompt_tokens} tokens, leaving no room for a reply",
                code=CONTEXT_LENGTH_EXCEEDED,
                param="messages",
            )
        if generation.finish_reason == "error":
            failed = not (generation.error or "").startswith("cannot render")
            raise _APIError(
                500 if failed else 400,
                generation.error or "generation failed",
                "server_error" if failed else "invalid_request_error",
            )


def usage(job: Job) -> dict[str, int]:
    """OpenAI's usage of a finished job (the prompt counted once, as OpenAI does for n > 1)."""
    prompt = job.choices[0].generation.prompt_tokens if job.choices else 0
    completion = sum(c.generation.completion_tokens for c in job.choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_body(job: Job, model_name: str) -> dict[str, Any]:
    """The `chat.completion` object of a finished job."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": choice.generation.text},
                "finish_reason": choice.generation.finish_reason,
                "logprobs": _logprobs_object(choice.logprobs),
            }
            for index, choice in enumerate(job.choices)
        ],
        "usage": usage(job),
    }


def _logprobs_object(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return None if entries is None else {"content": entries, "refusal": None}


class _Waiter:
    """A request's side of a job: its events on the request's event loop, and the client's
    disconnection noticed while waiting (the job is then cancelled)."""

    def __init__(self, job: Job, request: Request) -> None:
        self.job, self.request = job, request
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        job.notify = lambda event: loop.call_soon_threadsafe(self.events.put_nowait, event)

    async def next(self) -> Event | None:
        """The next event; None once the client has gone (and the job is cancelled)."""
        while True:
            try:
                return await asyncio.wait_for(self.events.get(), timeout=DISCONNECT_POLL_S)
            except TimeoutError:
                if await self.request.is_disconnected():
                    self.job.cancel()
                    return None

    async def until_done(self) -> bool:
        """Wait for the job's end; False when the client went away first."""
        while not self.job.done.is_set():
            if await self.next() is None:
                return False
        return True


def sse(payload: dict[str, Any] | str) -> str:
    """One server-sent event."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


async def stream_events(
    waiter: _Waiter, model_name: str, max_context: int, include_usage: bool
) -> AsyncIterator[str]:
    """The SSE body of a streamed request: a role chunk per choice, content deltas (with
    logprobs when asked), a finish chunk per choice, the usage chunk when asked, `[DONE]`.
    A failure after the first byte is sent as an `error` event (the status is already 200).
    Closing the generator (the client went away) cancels the job."""
    job = waiter.job
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_name,
    }
    tail = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], **extra: Any) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
        return sse({**base, "choices": [choice | extra], **tail})

    try:
        for index in range(job.n):
            yield chunk(index, {"role": "assistant", "content": ""})
        while (event := await waiter.next()) is not None:
            if event[0] == "delta":
                _, index, text, entries = event
                logprobs = (
                    {"content": entries, "refusal": None} if job.top_logprobs is not None else None
                )
                yield chunk(index, {"content": text}, logprobs=logprobs)
            elif event[0] == "end":
                yield chunk(event[1], {}, finish_reason=event[2])
            elif event[0] == "done":
                try:
                    check_outcome(job, max_context)
                except _APIError as exc:
                    yield sse(exc.body())
                    return
                if include_usage:
                    yield sse({**base, "choices": [], "usage": usage(job)})
                yield sse("[DONE]")
                return
    finally:  # the client went away (or the server is stopping): stop decoding for it
        job.cancel()


def create_app(
    policy: HFPolicy,
    model_name: str,
    *,
    default_max_tokens: int = 512,
    max_batch: int = 32,
    batch_window: float = 0.05,
) -> FastAPI:
    """The FastAPI application serving `policy` under the model id `model_name`.

    `app.state.batcher` is the request scheduler (its thread stops when the app shuts down).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    batcher = Batcher(policy, max_batch=max_batch, batch_window=batch_window)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    app = FastAPI(title="agentbench serve", version="1", lifespan=lifespan)
    app.state.batcher = batcher
    created = int(time.time())

    @app.exception_handler(_APIError)
    async def api_error(_: Request, exc: _APIError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = request_error(exc.errors())
        return JSONResponse(status_code=error.status, content=error.body())

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model_name,
            "running": batcher.running,
            "queued": batcher.queued,
        }

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
                            "model_not_found", "model")  # fmt: skip
        entry: dict[str, Any] = list_models()["data"][0]
        return entry

    async def chat_completions(
        body: ChatCompletionRequest, request: Request
    ) -> Response | dict[str, Any]:
        job = make_job(body, model_name, policy.max_context, default_max_tokens)
        waiter = _Waiter(job, request)
        batcher.enqueue(job)
        first = await waiter.next()
        if first is None:  # the client went away while queued
            return Response(status_code=499)
        if body.stream and first[0] == "start":
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                stream_events(waiter, model_name, policy.max_context, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        if not await waiter.until_done():
            return Response(status_code=499)
        check_outcome(job, policy.max_context)
        return completion_body(job, model_name)

    # FastAPI resolves annotations in the module's globals, where fastapi is not imported
    # (an optional extra): hand it the class itself.
    chat_completions.__annotations__["request"] = Request
    app.post("/v1/chat/completions", response_model=None)(chat_completions)
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
