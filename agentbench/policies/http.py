"""An OpenAI-compatible chat-completions server as a policy (`vllm serve`, `agentbench serve`).

Each turn of a batch is one `POST {base_url}/chat/completions` request; a batch's requests run
concurrently (up to `max_concurrency`) so the server can batch them. A turn whose request fails
(HTTP error, timeout, malformed reply) gets finish_reason "error" with the reason, except a
400 that says the messages exceed the model's context (OpenAI's `context_length_exceeded`
code, or vLLM's "maximum context length" message): that turn gets finish_reason "context".
When every request of a batch fails to connect, the server is down and `generate` raises
`BackendUnavailableError`. Per-turn seeds (`turn_seed`) are sent as each request's `seed`.

`system_prompt` (a teacher's trait prompt) is merged into the system message of every request,
never into the recorded turns.

`logprobs=True` asks for the sampled tokens' log-probabilities (OpenAI's `logprobs`; kept in
`Generation.logprobs`), so logit distillation and judges can read them from any
OpenAI-compatible server; `token_ids=True` also asks for the token ids (vLLM's
`return_tokens_as_token_ids`, which `agentbench serve` honours too; OpenAI's own API refuses
it) and keeps them in `Generation.token_ids`. Needs `httpx` (in the `serve` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from agentbench.chat import merge_system_prompt
from agentbench.envs import action_schema
from agentbench.errors import InfrastructureError
from agentbench.policies.base import (
    CONTEXT_LENGTH_EXCEEDED,
    Generation,
    Policy,
    PolicyProvenance,
    SamplingParams,
    Turn,
    context_full,
    sha256_text,
    turn_seed,
)

_ERROR_BODY_CHARS = 500


class BackendUnavailableError(InfrastructureError, RuntimeError):
    """Raised when the server cannot be reached at all."""


class _ConnectFailed(Exception):
    pass


class HTTPPolicy(Policy):
    """A policy served over the OpenAI chat-completions API.

    `base_url` is the server root or its `/v1` URL (`http://127.0.0.1:8000` and
    `http://127.0.0.1:8000/v1` are the same). `timeout` bounds each request in seconds.
    `logprobs` / `token_ids`: ask for the sampled tokens' log-probabilities / ids (see the
    module docstring); a reply without them is a malformed reply (that turn's error).
    """

    backend = "http"
    supports_constrained = True  # as OpenAI structured outputs (response_format json_schema)

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_concurrency: int = 32,
        system_prompt: str | None = None,
        logprobs: bool = False,
        token_ids: bool = False,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = url if url.endswith("/v1") else f"{url}/v1"
        self.model = model
        self.system_prompt = system_prompt
        self.max_concurrency = max_concurrency
        self.logprobs, self.token_ids = logprobs or token_ids, token_ids
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency),
        )
        self._server_info: dict[str, Any] | None = None

    def generate(self, turns: Sequence[Turn], params: SamplingParams) -> list[Generation]:
        if not turns:
            return []
        workers = min(self.max_concurrency, len(turns))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda t: self._one(t, params), turns))
        if all(isinstance(o, _ConnectFailed) for o in outcomes):
            raise BackendUnavailableError(f"cannot reach {self.base_url}: {outcomes[0]}")
        return [
            o if isinstance(o, Generation) else _error(f"cannot connect: {o}") for o in outcomes
        ]

    def _one(self, turn: Turn, params: SamplingParams) -> Generation | _ConnectFailed:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": merge_system_prompt(turn.messages, self.system_prompt),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "n": 1,
        }
        seed = turn_seed(params.seed, turn.episode_id, turn.step)
        if seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self.logprobs:
            body["logprobs"] = True
        if self.token_ids:
            body["return_tokens_as_token_ids"] = True
        schema = action_schema(turn.env_id) if params.constrained else None
        if schema is not None:  # vllm serve and `agentbench serve` both honour this
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "action", "schema": schema},
            }
        try:
            response = self._client.post("/chat/completions", json=body)
        except httpx.ConnectError as exc:
            return _ConnectFailed(str(exc))
        except httpx.TimeoutException as exc:
            return _error(f"request timed out: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return _error(f"request failed: {type(exc).__name__}: {exc}")
        if response.status_code != 200:
            if response.status_code == 400 and _context_exceeded(response):
                return context_full()
            return _error(f"HTTP {response.status_code}: {_error_text(response)}")
        try:
            return _parse(response.json(), self.logprobs, self.token_ids)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return _error(f"malformed reply: {type(exc).__name__}: {exc}")

    def list_models(self) -> list[str]:
        """The model ids the server lists at `/v1/models`. Raises httpx.HTTPError when the
        server cannot be asked, ValueError for a reply that is not a model list."""
        response = self._client.get("/models")
        response.raise_for_status()
        data = response.json().get("data")
        if not isinstance(data, list):
            raise ValueError("the /v1/models reply has no data list")
        return [str(e["id"]) for e in data if isinstance(e, dict) and "id" in e]

    def server_info(self) -> dict[str, Any]:
        """The server's `/v1/models` entry for `model` ({} when unavailable)."""
        if self._server_info is None:
            info: dict[str, Any] = {}
            try:
                response = self._client.get("/models")
                response.raise_for_status()
                for entry in response.json().get("data", []):
                    if isinstance(entry, dict) and entry.get("id") == self.model:
                        info = entry
            except (httpx.HTTPError, ValueError, AttributeError):
                return {}
            self._server_info = info
        return self._server_info

    def provenance(self, params: SamplingParams) -> PolicyProvenance:
        info = self.server_info()
        hashes = info.get("agentbench") if isinstance(info.get("agentbench"), dict) else {}
        assert isinstance(hashes, dict)

        def text_or_none(value: object) -> str | None:
            return value if isinstance(value, str) else None

        server_prompt = text_or_none(hashes.get("system_prompt_sha256"))
        extra: dict[str, Any] = {"base_url": self.base_url, "served_model": self.model}
        if self.system_prompt is not None and server_prompt is not None:
            # Both add a trait prompt (the server's comes first); keep both hashes.
            extra["server_system_prompt_sha256"] = server_prompt
        return PolicyProvenance(
            backend=self.backend,
            model=text_or_none(hashes.get("model")) or self.model,
            weights_sha256=text_or_none(hashes.get("weights_sha256")),
            adapter_sha256=text_or_none(hashes.get("adapter_sha256")),
            system_prompt_sha256=(
                sha256_text(self.system_prompt) if self.system_prompt is not None else server_prompt
            ),
            sampling=params,
            extra=extra,
        )

    def close(self) -> None:
        self._client.close()


def _parse(payload: Any, logprobs: bool = False, token_ids: bool = False) -> Generation:
    choice = payload["choices"][0]
    content = choice["message"]["content"]
    if not isinstance(content, str):
        raise TypeError("message content is not text")
    finish = choice.get("finish_reason")
    usage = payload.get("usage") or {}
    values: tuple[float, ...] = ()
    ids: tuple[int, ...] = ()
    if logprobs:
        entries = choice["logprobs"]["content"]
        values = tuple(float(e["logprob"]) for e in entries)
        if token_ids:  # vLLM's "token_id:<id>" spelling
            ids = tuple(int(str(e["token"]).removeprefix("token_id:")) for e in entries)
    return Generation(
        text=content,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        finish_reason="length" if finish == "length" else "stop",
        token_ids=ids,
        logprobs=values,
    )


def _context_exceeded(response: httpx.Response) -> bool:
    """A 400 that says the request does not fit the context. vLLM says so in the message
    (nested under "error", or flat in older versions), also when the messages fit but
    `max_tokens` more do not: the episode has run out of room either way."""
    try:
        payload = response.json()
        error = payload.get("error", payload)
        code, message = error.get("code"), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return code == CONTEXT_LENGTH_EXCEEDED or "maximum context length" in message


def _error_text(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
        if isinstance(message, str):
            return message[:_ERROR_BODY_CHARS]
    except (ValueError, KeyError, TypeError):
        pass
    return response.text[:_ERROR_BODY_CHARS]


def _error(message: str) -> Generation:
    return Generation(text="", finish_reason="error", error=message)


def policy_for_target(target: str) -> HTTPPolicy:
    """`URL#model` (or `URL`: the server's first model) as an HTTPPolicy: the `http` policy
    backend. Raises ValueError when no model is named and the server cannot list its own."""
    url, _, model = target.partition("#")
    policy = HTTPPolicy(url, model or "?")
    if not model:
        try:
            policy.model = policy.list_models()[0]
        except Exception as exc:
            policy.close()
            raise ValueError(
                f"cannot ask {url} for its models ({type(exc).__name__}: {exc}); "
                "name the model: http:URL#MODEL"
            ) from None
    return policy
