"""`agentbench serve` driven by the official `openai` client: streaming, n > 1, logprobs
(checked against a direct forward pass), a client that gives up mid-generation, a short
request sent behind a long one, and bad parameters in OpenAI's error shape. A real uvicorn
server on 127.0.0.1 serves a tiny random Llama (gibberish text: these are protocol tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

from agentbench.policies import Message, SamplingParams, Turn  # noqa: E402
from agentbench.policies.hf import HFPolicy  # noqa: E402
from agentbench.policies.http import HTTPPolicy  # noqa: E402
from agentbench.recipes.tiny import save_tiny_llama  # noqa: E402
from agentbench.serve import Batcher, create_app, serve_socket  # noqa: E402

CONTEXT = 2048
HI = [{"role": "user", "content": "hi"}]
LONG_TOKENS = 600
"""Greedy from "hi", the tiny model writes 692 tokens before its end-of-text token."""


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> HFPolicy:
    path = tmp_path_factory.mktemp("tiny-llama-long")
    save_tiny_llama(path, max_position_embeddings=CONTEXT)
    return HFPolicy(path, device="cpu", max_context=CONTEXT)


@pytest.fixture(scope="module")
def served(local: HFPolicy) -> Iterator[tuple[str, Batcher]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(local, "tiny", default_max_tokens=16)
    server = serve_socket(app, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the server thread died on start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.batcher
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture()
def client(served: tuple[str, Batcher]) -> Iterator[Any]:
    with openai.OpenAI(base_url=served[0] + "/v1", api_key="none", max_retries=0) as c:
        yield c


def direct(local: HFPolicy, params: SamplingParams, messages: list[dict[str, str]] = HI) -> str:
    chat = [Message.model_validate(m) for m in messages]
    return local.generate_chats([chat], params, [params.seed])[0].text


def wait_idle(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(url + "/health").json()["running"]:
        assert time.monotonic() < deadline, "the server is still busy"
        time.sleep(0.05)


def test_models_and_a_greedy_completion_match_the_local_model(client: Any, local: HFPolicy) -> None:
    assert client.models.retrieve("tiny").id == "tiny"
    assert [m.id for m in client.models.list()] == ["tiny"]
    reply = client.chat.completions.create(model="tiny", messages=HI, temperature=0, max_tokens=12)
    assert reply.choices[0].message.content == direct(
        local, SamplingParams(temperature=0, max_new_tokens=12)
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 12
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")


def test_n_choices_are_seeded_per_choice(client: Any, local: HFPolicy) -> None:
    # Before: n > 1 was refused.
    kwargs: dict[str, Any] = {"model": "tiny", "messages": HI, "max_tokens": 10, "seed": 7}
    reply = client.chat.completions.create(n=3, **kwargs)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) > 1  # sampled, each choice with its own generator
    # Choice 0 keeps the request's seed: what n=1 samples; the whole reply is reproducible.
    assert texts[0] == client.chat.completions.create(**kwargs).choices[0].message.content
    assert texts[0] == direct(local, SamplingParams(max_new_tokens=10, seed=7))
    again = client.chat.completions.create(n=3, **kwargs)
    assert [c.message.content for c in again.choices] == texts
    assert reply.usage.completion_tokens == 30 and reply.usage.prompt_tokens > 0


def test_logprobs_match_a_direct_forward_pass(client: Any, local: HFPolicy) -> None:
    import torch

    reply = client.chat.completions.create(
        model="tiny", messages=HI, max_tokens=8, seed=3, logprobs=True, top_logprobs=5,
        extra_body={"return_tokens_as_token_ids": True},
    )  # fmt: skip
    content = reply.choices[0].logprobs.content
    ids = [int(e.token.removeprefix("token_id:")) for e in content]
    assert len(ids) == reply.usage.completion_tokens == 8
    prompt = local.tokenizer(local.render([Message(role="user", content="hi")])).input_ids
    with torch.inference_mode():
        logits = local.model(torch.tensor([prompt + ids])).logits[0].float()
    expected = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    for position, (entry, token) in enumerate(zip(content, ids, strict=True)):
        assert entry.logprob == pytest.approx(float(expected[position, token]), abs=1e-4)
        top = [(int(t.token.removeprefix("token_id:")), t.logprob) for t in entry.top_logprobs]
        values, order = expected[position].topk(5)
        assert [t for t, _ in top] == order.tolist()
        assert [v for _, v in top] == pytest.approx(values.tolist(), abs=1e-4)
    # Without token ids: OpenAI's token text and bytes, spelling the reply.
    plain = client.chat.completions.create(
        model="tiny", messages=HI, max_tokens=8, seed=3, logprobs=True
    )
    entries = plain.choices[0].logprobs.content
    assert [e.logprob for e in entries] == pytest.approx([e.logprob for e in content])
    assert all(e.top_logprobs == [] and bytes(e.bytes) == e.token.encode() for e in entries)
    assert "".join(e.token for e in entries) == plain.choices[0].message.content
    assert (
        client.chat.completions.create(model="tiny", messages=HI, max_tokens=2).choices[0].logprobs
        is None
    )


def test_streaming_sends_what_a_plain_request_returns(
    client: Any, served: tuple[str, Batcher]
) -> None:
    full = client.chat.completions.create(model="tiny", messages=HI, temperature=0, max_tokens=30)
    text = full.choices[0].message.content
    stop = next(c for c in text[3:] if c.isascii() and c.isalnum())
    for extra in ({}, {"stop": [stop, "never-said"]}, {"n": 2, "logprobs": True}):
        kwargs: dict[str, Any] = {
            "model": "tiny", "messages": HI, "temperature": 0, "max_tokens": 30, **extra
        }  # fmt: skip
        plain = client.chat.completions.create(**kwargs)
        chunks = list(
            client.chat.completions.create(
                stream=True, stream_options={"include_usage": True}, **kwargs
            )
        )
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        assert len({c.id for c in chunks}) == 1
        for choice in plain.choices:
            mine = [x for c in chunks for x in c.choices if x.index == choice.index]
            assert mine[0].delta.role == "assistant"
            assert "".join(x.delta.content or "" for x in mine) == choice.message.content
            assert [x.finish_reason for x in mine if x.finish_reason] == [choice.finish_reason]
            if extra.get("logprobs"):
                streamed = [e for x in mine if x.logprobs for e in x.logprobs.content]
                assert [e.logprob for e in streamed] == [e.logprob for e in choice.logprobs.content]
        assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
        assert all(c.usage is None for c in chunks[:-1])
    if True:  # the raw wire: server-sent events ending with [DONE]
        body = {"model": "tiny", "messages": HI, "max_tokens": 3, "stream": True}
        raw = httpx.post(served[0] + "/v1/chat/completions", json=body, timeout=60)
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert raw.text.startswith("data: {") and raw.text.endswith("data: [DONE]\n\n")


def test_a_client_that_gives_up_stops_the_generation(
    client: Any, served: tuple[str, Batcher], local: HFPolicy
) -> None:
    url, batcher = served
    before = len(batcher.cancellations)
    impatient = client.with_options(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model="tiny", messages=HI, temperature=0, max_tokens=LONG_TOKENS
        )
    gave_up = time.monotonic()
    while len(batcher.cancellations) == before:
        assert time.monotonic() - gave_up < 10, "the server never noticed the disconnect"
        time.sleep(0.02)
    noticed = time.monotonic() - gave_up
    cancel = batcher.cancellations[-1]
    after = cancel.tokens_generated - cancel.tokens_at_cancel
    print(f"\ncancelled after {gave_up - started:.2f} s: {cancel.tokens_at_cancel} tokens when "
          f"noticed ({noticed:.2f} s later), {after} more after it, of {LONG_TOKENS}")  # fmt: skip
    assert cancel.max_tokens == LONG_TOKENS
    assert after <= 1  # checked every step: at most the token being sampled
    assert cancel.tokens_generated < LONG_TOKENS
    # The server is free: nothing runs, and the next request is served at once.
    wait_idle(url, timeout=5)
    t0 = time.monotonic()
    quick = client.chat.completions.create(model="tiny", messages=HI, max_tokens=4)
    assert quick.choices[0].finish_reason == "length"
    assert time.monotonic() - t0 < 5

    # A stream the client closes after a few chunks is cancelled the same way.
    stream = client.chat.completions.create(
        model="tiny", messages=HI, temperature=0, max_tokens=LONG_TOKENS, stream=True
    )
    for _, _chunk in zip(range(4), stream, strict=False):
        pass
    stream.close()
    closed = time.monotonic()
    while len(batcher.cancellations) == before + 1:
        assert time.monotonic() - closed < 10, "the closed stream kept decoding"
        time.sleep(0.02)
    assert batcher.cancellations[-1].tokens_generated < LONG_TOKENS
    wait_idle(url, timeout=5)


def test_a_short_request_behind_a_long_one_is_not_held(
    client: Any, served: tuple[str, Batcher]
) -> None:
    url, _ = served
    wait_idle(url)
    times: dict[str, float] = {}
    tokens: dict[str, int] = {}

    def ask(name: str, max_tokens: int) -> None:
        t0 = time.monotonic()
        reply = client.chat.completions.create(
            model="tiny", messages=HI, temperature=0, max_tokens=max_tokens
        )
        times[name] = time.monotonic() - t0
        tokens[name] = reply.usage.completion_tokens

    long = threading.Thread(target=ask, args=("long", LONG_TOKENS))
    long.start()
    deadline = time.monotonic() + 30
    while not httpx.get(url + "/health").json()["running"]:  # the long one is decoding
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ask("short", 4)
    still_running = httpx.get(url + "/health").json()["running"]
    long.join(timeout=120)
    print(f"\nshort {times['short']:.2f} s behind long {times['long']:.2f} s")
    assert tokens == {"long": LONG_TOKENS, "short": 4}
    assert still_running == 1  # the short one finished while the long one was decoding
    assert times["short"] < times["long"] / 5


def test_bad_parameters_are_openai_errors(client: Any) -> None:
    base: dict[str, Any] = {"model": "tiny", "messages": HI, "max_tokens": 3}
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"frequency_penalty": 0.5}, "unsupported_parameter", "frequency_penalty"),
        ({"extra_body": {"best_of": 2}}, "unsupported_parameter", "best_of"),
        ({"stream": True, "stream_options": {"include_usage": True, "x": 1}},
         "unsupported_parameter", "stream_options.x"),
        ({"top_logprobs": 50, "logprobs": True}, "invalid_value", "top_logprobs"),
        ({"top_logprobs": 2}, "invalid_value", "top_logprobs"),
        ({"n": 0}, "invalid_value", "n"),
        ({"temperature": "hot"}, "invalid_value", "temperature"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "invalid_value", "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "invalid_value", "messages.0.content"),
        ({"max_tokens": CONTEXT}, "invalid_value", "max_tokens"),
        ({"stream_options": {"include_usage": True}}, "invalid_value", "stream_options"),
    ]  # fmt: skip
    for extra, code, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**(base | extra))
        error = caught.value
        assert (error.code, error.param) == (code, param), (extra, error.body)
        message = str(error.body["message"])
        for pydantic_words in ("Input should", "Extra inputs", "list[", "function-"):
            assert pydantic_words not in message, (extra, message)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(**(base | {"model": "other"}))
    assert missing.value.code == "model_not_found"


def test_http_policy_asks_for_logprobs(served: tuple[str, Batcher], local: HFPolicy) -> None:
    turn = Turn("ep-l", "agentbench/Bash-v0", 0, (Message(role="user", content="hi"),))
    params = SamplingParams(temperature=1.0, max_new_tokens=6, seed=2)
    plain = HTTPPolicy(served[0], "tiny")
    with_ids = HTTPPolicy(served[0], "tiny", logprobs=True, token_ids=True)
    only_logprobs = HTTPPolicy(served[0], "tiny", logprobs=True)
    try:
        [a] = plain.generate([turn], params)
        [b] = with_ids.generate([turn], params)
        [c] = only_logprobs.generate([turn], params)
    finally:
        for policy in (plain, with_ids, only_logprobs):
            policy.close()
    assert a.logprobs == a.token_ids == ()
    assert a.text == b.text == c.text
    assert len(b.token_ids) == len(b.logprobs) == b.completion_tokens == 6
    assert local.tokenizer.decode(list(b.token_ids)) == b.text
    assert c.logprobs == pytest.approx(b.logprobs) and c.token_ids == ()
    assert all(lp <= 0 for lp in b.logprobs)
