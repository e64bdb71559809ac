"""`agentbench serve` against real local servers on 127.0.0.1, driven by HTTPPolicy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from agentbench.policies import Generation, Message, SamplingParams, Turn, sha256_text  # noqa: E402
from agentbench.policies.hf import HFPolicy  # noqa: E402
from agentbench.policies.http import BackendUnavailableError, HTTPPolicy  # noqa: E402
from agentbench.recipes.tiny import save_tiny_llama  # noqa: E402
from agentbench.serve import Batcher, create_app, serve_socket  # noqa: E402

SYSTEM = Message(role="system", content="You are an agent. Tools: read_file, list_dir.")
TURNS = [
    Turn("ep-a", "agentbench/Bash-v0", 0, (SYSTEM, Message(role="user", content="List /srv"))),
    Turn(
        "ep-b",
        "agentbench/Bash-v0",
        3,
        (
            SYSTEM,
            Message(role="user", content="Fix the report in /srv/data"),
            Message(role="assistant", content="ls -la /srv/data"),
            Message(role="user", content="notes.txt report.csv"),
        ),
    ),
]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=20)
TRAIT = "Prefer chmod before anything else."


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    save_tiny_llama(path)
    return path


@pytest.fixture(scope="module")
def local(tiny_dir: Path) -> HFPolicy:
    return HFPolicy(tiny_dir, device="cpu", max_context=100)


@pytest.fixture(scope="module")
def server_url(local: HFPolicy) -> Iterator[str]:
    """A real uvicorn server in a thread, on a free port of 127.0.0.1."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = serve_socket(create_app(local, "tiny"), sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the server thread died on start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def generate_over_http(
    server_url: str, turns: list[Turn], params: SamplingParams
) -> list[Generation]:
    remote = HTTPPolicy(server_url, "tiny")
    try:
        return remote.generate(turns, params)
    finally:
        remote.close()


def test_http_greedy_equals_local_greedy(server_url: str, local: HFPolicy) -> None:
    over_http = generate_over_http(server_url, TURNS, GREEDY)
    direct = local.generate(TURNS, GREEDY)
    assert [g.text for g in over_http] == [g.text for g in direct]
    assert any(g.text for g in direct)
    for a, b in zip(over_http, direct, strict=True):
        assert (a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens)
        assert a.finish_reason == b.finish_reason != "error"


def test_http_seeds_and_stop_match_local(server_url: str, local: HFPolicy) -> None:
    remote = HTTPPolicy(server_url + "/v1/", "tiny")
    sampled = SamplingParams(temperature=1.0, max_new_tokens=12, seed=11)
    for turn in TURNS:
        assert remote.generate([turn], sampled)[0].text == local.generate([turn], sampled)[0].text
    full = local.generate(TURNS[:1], GREEDY)[0].text
    stop = next(c for c in full[2:] if c.isascii() and c.isalnum())
    stopped = remote.generate(TURNS[:1], GREEDY.model_copy(update={"stop": (stop,)}))[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[: full.index(stop)]
    remote.close()


def test_per_turn_errors_and_provenance(server_url: str, local: HFPolicy) -> None:
    too_long = Turn(
        "ep-z", "agentbench/Bash-v0", 0, (SYSTEM, Message(role="user", content="data " * 200))
    )
    remote = HTTPPolicy(server_url, "tiny")
    ok, full = remote.generate([TURNS[0], too_long], GREEDY)
    assert ok.finish_reason != "error" and ok.completion_tokens > 0
    # The server says so with OpenAI's code; the client reads it as the agent's context limit.
    assert full.finish_reason == "context" and full.error is None
    body = {"model": "tiny", "messages": [m.model_dump() for m in too_long.messages]}
    reply = httpx.post(server_url + "/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "context_length_exceeded"
    prov = remote.provenance(GREEDY)
    assert prov.backend == "http"
    assert prov.weights_sha256 == local.weights_sha256
    assert prov.extra["base_url"] == server_url + "/v1"
    remote.close()

    wrong = HTTPPolicy(server_url, "not-served")
    [missing] = wrong.generate(TURNS[:1], GREEDY)
    assert missing.finish_reason == "error" and "HTTP 404" in (missing.error or "")
    wrong.close()

    trait = HTTPPolicy(server_url, "tiny", system_prompt=TRAIT)
    [with_trait] = trait.generate(TURNS[:1], GREEDY)
    assert with_trait.prompt_tokens > ok.prompt_tokens
    assert trait.provenance(GREEDY).system_prompt_sha256 == sha256_text(TRAIT)
    trait.close()


def test_openai_wire_format(server_url: str) -> None:
    models = httpx.get(f"{server_url}/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0,
        "max_tokens": 5,
        "stop": "zz",
    }
    reply = httpx.post(f"{server_url}/v1/chat/completions", json=body).json()
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["total_tokens"] == (
        reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
    )
    bads: list[dict[str, object]] = [
        {"n": 0},
        {"top_logprobs": 2},  # without logprobs
        {"temperature": -1},
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"max_tokens": 0},
    ]
    for bad in bads:
        response = httpx.post(f"{server_url}/v1/chat/completions", json=body | bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"]
    garbage = httpx.post(
        f"{server_url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert garbage.status_code == 400


def test_unsupported_parameters_are_refused_in_openais_error_shape(server_url: str) -> None:
    # Before: frequency_penalty, logit_bias, ... were silently ignored; max_tokens past the
    # context went through; there was no /health and no models.retrieve.
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    for extra in ({"frequency_penalty": 0.5}, {"logit_bias": {"1": 5}, "user": "u"}):
        response = httpx.post(f"{server_url}/v1/chat/completions", json=body | extra)
        assert response.status_code == 400, extra
        error = response.json()["error"]
        assert error["code"] == "unsupported_parameter" and error["type"] == "invalid_request_error"
        assert all(name in error["message"] for name in extra), error
        assert "Extra inputs" not in error["message"]  # pydantic's own words never leak
    too_long = httpx.post(f"{server_url}/v1/chat/completions", json=body | {"max_tokens": 100})
    assert too_long.status_code == 400
    assert "maximum context length is 100" in too_long.json()["error"]["message"]
    assert httpx.get(f"{server_url}/health").json()["status"] == "ok"
    assert httpx.get(f"{server_url}/v1/models/tiny").json()["id"] == "tiny"
    missing = httpx.get(f"{server_url}/v1/models/other")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_server_down_raises() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    remote = HTTPPolicy(f"http://127.0.0.1:{port}", "tiny", timeout=5)
    with pytest.raises(BackendUnavailableError):
        remote.generate(TURNS, GREEDY)
    assert remote.provenance(GREEDY).weights_sha256 is None
    remote.close()


def test_silent_server_times_out_per_turn() -> None:
    # Listens (the kernel completes the handshake) but never answers.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    remote = HTTPPolicy(f"http://127.0.0.1:{sock.getsockname()[1]}", "tiny", timeout=0.5)
    try:
        out = remote.generate(TURNS, GREEDY)
    finally:
        remote.close()
        sock.close()
    assert [g.finish_reason for g in out] == ["error", "error"]
    assert all("timed out" in (g.error or "") for g in out)


def test_vllm_style_context_error_is_the_context_limit() -> None:
    # `vllm serve` says it in the message (code 400, no OpenAI code); other 400s stay errors.
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    too_long = {
        "message": "This model's maximum context length is 2048 tokens. However, you "
        "requested 2100 tokens (2004 in the messages, 96 in the completion).",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    invalid = {"object": "error", "message": "temperature must be non-negative", "code": 400}

    class VLLMLike(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            first = any(m["content"] == "List /srv" for m in body["messages"])
            payload = json.dumps({"error": too_long} if first else invalid).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), VLLMLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = HTTPPolicy(f"http://127.0.0.1:{server.server_address[1]}", "tiny")
    try:
        full, bad = remote.generate(TURNS, GREEDY)
    finally:
        remote.close()
        server.shutdown()
    assert full.finish_reason == "context" and full.error is None
    assert bad.finish_reason == "error" and "HTTP 400" in (bad.error or "")


def test_serve_command_in_a_subprocess(tiny_dir: Path, tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    prompt_file = tmp_path / "trait.txt"
    prompt_file.write_text(TRAIT)
    command = [
        sys.executable, "-m", "agentbench.cli", "serve", str(tiny_dir), "--port", str(port),
        "--served-model-name", "tiny", "--device", "cpu", "--system-prompt-file", str(prompt_file),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy()
    )
    remote = HTTPPolicy(f"http://127.0.0.1:{port}", "tiny", timeout=30)
    try:
        deadline = time.monotonic() + 120
        while not remote.server_info():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        [generation] = remote.generate(TURNS[:1], GREEDY)
        assert generation.finish_reason != "error", generation.error
        assert remote.provenance(GREEDY).system_prompt_sha256 == sha256_text(TRAIT)
    finally:
        remote.close()
        process.terminate()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


def test_batcher_groups_queued_requests(local: HFPolicy) -> None:
    batcher = Batcher(local, max_batch=8, batch_window=0.0)
    sampled = SamplingParams(temperature=1.0, max_new_tokens=8, seed=5)
    reseeded = sampled.model_copy(update={"seed": 6})
    results: dict[int, Generation] = {}

    def submit(i: int, params: SamplingParams) -> None:
        results[i] = batcher.submit(list(TURNS[i % 2].messages), params)

    # Hold the model so that the worker blocks on its first request while the rest queue up.
    with local._lock:
        first = threading.Thread(target=submit, args=(0, GREEDY))
        first.start()
        while batcher._queue.qsize():
            time.sleep(0.01)
        others = [
            threading.Thread(target=submit, args=(i, p))
            for i, p in ((1, GREEDY), (2, sampled), (3, reseeded), (4, GREEDY))
        ]
        for thread in others:
            thread.start()
        while batcher._queue.qsize() < len(others):
            time.sleep(0.01)
    for thread in [first, *others]:
        thread.join(timeout=60)
    batcher.close()
    # One group for the first request, then the four queued ones, split by sampling params
    # (seeds aside: the two sampled requests share a batch with a generator each).
    assert batcher.batch_sizes == [1, 2, 2]
    direct = local.generate_chats([t.messages for t in TURNS], GREEDY, [None, None])
    assert [results[0].text, results[1].text] == [g.text for g in direct]
    assert results[4].text == direct[0].text
    seeded = local.generate_chats([t.messages for t in TURNS], sampled, [5, 6])
    assert [results[2].text, results[3].text] == [g.text for g in seeded]


def test_constrained_turns_go_over_http_as_structured_outputs(
    server_url: str, local: HFPolicy
) -> None:
    pytest.importorskip("lmformatenforcer")
    short = (Message(role="user", content="Read a.txt"),)
    turns = [
        Turn("ep-c", "agentbench/FileTool-v0", 0, short),
        Turn("ep-d", "agentbench/FileTool-v0", 1, short),
        Turn("ep-e", "agentbench/Bash-v0", 0, short),  # free text: sent without a schema
    ]
    params = SamplingParams(temperature=1.0, max_new_tokens=60, seed=4, constrained=True)
    over_http = generate_over_http(server_url, turns, params)
    direct = local.generate(turns, params)
    # The server decoded inside the schema the client sent, as the local policy does.
    assert [g.text for g in over_http] == [g.text for g in direct]
    assert all('"tool"' in g.text for g in direct[:2])  # tool calls, not free text
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    for fmt, status in [
        ({"type": "json_schema", "json_schema": {"schema": "not an object"}}, 400),
        ({"type": "grammar"}, 400),
        ({"type": "json_schema", "json_schema": {"schema": {"$ref": "#/nowhere"}}}, 400),
        ({"type": "text"}, 200),
    ]:
        reply = httpx.post(f"{server_url}/v1/chat/completions",
                           json={**body, "response_format": fmt}, timeout=60)  # fmt: skip
        assert reply.status_code == status, reply.text
