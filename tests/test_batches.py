"""The events of one socket read reach the consumer together: each run of text of one kind is
joined into one feed, in stream order, and the cuts stay exact (the tokenizer's cuts hold for any
chunking, so for any batching too)."""

from __future__ import annotations

import aiohttp

from anytime_sim import SimConfig, open_simulator
from runner.engine.attempt import AttemptState, _feed_batch
from runner.engine.consumers import TraceConsumer
from runner.engine.lane import CallSpec, Lane
from runner.engine.limits import LaneLimiter
from runner.engine.retry import RetryPolicy
from runner.engine.spend import SpendGuard
from runner.ledger.memory import MemorySink
from runner.ledger.prices import ModelPrice
from runner.providers.openai_chat import OpenAIChatAdapter
from runner.tokens.encodings import get_encoding
from runner.types import ChatRequest, Content, Finish, Message, Reasoning, StreamEvent, Usage

ENC = get_encoding("o200k_base")


class Recording(TraceConsumer):
    """A trace consumer that also keeps every feed it was given, as (kind, text)."""

    def __init__(self, budgets: tuple[int, ...], stop_after: int | None = None) -> None:
        super().__init__(ENC, budgets, "reasoning")
        self.feeds: list[tuple[str, str]] = []
        self.stop_after = stop_after

    def on_reasoning(self, text: str) -> bool:
        self.feeds.append(("reasoning", text))
        return super().on_reasoning(text) or len(self.feeds) == self.stop_after

    def on_content(self, text: str) -> bool:
        self.feeds.append(("content", text))
        return super().on_content(text) or len(self.feeds) == self.stop_after


def test_a_batch_joins_runs_of_one_kind_and_keeps_their_order() -> None:
    consumer = Recording((10_000,))
    state = AttemptState()
    batch: list[StreamEvent] = [
        Reasoning("a"),
        Reasoning("b"),
        Content("c"),
        Usage(input_tokens=1, output_tokens=2),
        Reasoning("d"),
        Finish("length"),
        Content("e"),
        Content("f"),
    ]
    assert not _feed_batch(batch, consumer, state)
    assert consumer.feeds == [("reasoning", "ab"), ("content", "c"), ("reasoning", "d"), ("content", "ef")]
    assert state.usage == Usage(input_tokens=1, output_tokens=2) and state.finish == "length"
    assert state.received_chars == 6


def test_a_batch_stops_at_the_feed_that_completes_the_last_cut() -> None:
    consumer = Recording((10_000,), stop_after=2)
    state = AttemptState()
    batch: list[StreamEvent] = [Reasoning("a"), Content("b"), Usage(input_tokens=1, output_tokens=2), Reasoning("c")]
    assert _feed_batch(batch, consumer, state)
    assert consumer.feeds == [("reasoning", "a"), ("content", "b")]
    assert state.usage is None  # nothing after the cut is looked at


async def test_reads_of_many_chunks_are_fed_at_once_and_cut_exactly() -> None:
    # time scale 0: the simulator writes up to 32 one-token chunks at once, so reads hold many events
    budgets = (3, 64, 200, 700)
    config = SimConfig(time_scale=0.0, chunk_tokens=1)
    prompt = (Message("user", "Count the primes below 50."),)
    request = ChatRequest(model="sim-gpt-oss-20b", messages=prompt, max_output_tokens=4000, seed=5)
    async with open_simulator(config, []) as sim, aiohttp.ClientSession() as session:
        adapter = OpenAIChatAdapter(f"{sim.base_url}/v1", "k", provider="p")
        async with adapter.stream(session, request) as response:
            events = [event async for event in response.events]
        lane = Lane(
            name="p",
            adapter=adapter,
            limiter=LaneLimiter(rpm=None, tpm=None, max_concurrency=1),
            policy=RetryPolicy(max_attempts=1),
            session=session,
            ledger=MemorySink(),
            spend=SpendGuard(None, {}),
            first_token_timeout=30.0,
            idle_timeout=30.0,
            total_timeout=60.0,
        )
        spec = CallSpec(
            job_id="j", kind="trace", model="m", request=request, prompt_tokens=10, price=ModelPrice(input=1, output=1)
        )
        result = await lane.call(spec, lambda: Recording((*budgets, 10**6)))  # a budget never reached: read it all
    consumer = result.consumer
    assert isinstance(consumer, Recording)
    reasoning = "".join(e.text for e in events if isinstance(e, Reasoning))
    content = "".join(e.text for e in events if isinstance(e, Content))
    texts = [e for e in events if isinstance(e, Reasoning | Content)]
    assert len(consumer.feeds) < len(texts) / 4  # reads of many chunks were fed at once
    kinds = [kind for kind, _ in consumer.feeds]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning, then all content
    assert "".join(t for k, t in consumer.feeds if k == "reasoning") == reasoning
    assert "".join(t for k, t in consumer.feeds if k == "content") == content
    consumer.output_tokens_counted()
    tokens = ENC.encode_ordinary(reasoning)
    assert len(tokens) > budgets[-1]
    for b in budgets:
        assert consumer.cuts[b].tokens == b
        assert consumer.cuts[b].text == ENC.decode(tokens[:b])
