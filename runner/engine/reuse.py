"""Trace reuse from the engine's side: a call already paid for stands in for a new one (docs/reuse.md).

`runner.engine.calling` hands every trace and every answer-shaped call to `Reuser.stream` and
`Reuser.ask`, which look its key up (`runner.config.reuse_keys`) in the run's `TraceStore` (the
run's own transcripts and the runs named by ``run.reuse`` / ``--reuse``) and then:

- **serve** it: the stored text is fed to the call's consumer as if it streamed (a trace's cuts are
  made again from it with the model's encoding, and must land where the stored cuts did), no
  request is sent, and a ``served`` `Reuse` record says what was not spent;
- **continue** a stored trace that ends before the last budget, where the protocol can
  (`runner.config.kinds.continues_trace`): one request with the stored text as an assistant
  prefill, whose stream goes on from it; a ``continued`` record counts the prefix not generated;
- or send the call as usual. When a stored trace of the same key existed but could not serve, a
  ``requested`` record says why (a budget beyond its end on a protocol that cannot continue it).

A forced answer is looked up by its call key, which names the trace it answers (the trace key of
its execution's trace, remembered here), so an answer is only ever reused for the same sample.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from runner.config import calls
from runner.config.calls import ModelPlan
from runner.config.kinds import continues_trace
from runner.config.manifest import LoadedManifest
from runner.config.reuse_keys import call_key, trace_key
from runner.engine.attempt import CallSpec
from runner.engine.consumers import AnswerConsumer, TraceConsumer
from runner.engine.lane import CallResult, Lane, RecordSink
from runner.ledger.prices import reuse_usd
from runner.ledger.records import Reuse, ReuseMode
from runner.ledger.trace_store import StoredCall, TraceStore
from runner.ledger.transcripts import CallText

# executions whose trace key is remembered for their answers' keys (the oldest are dropped)
_REMEMBERED = 4096


class Reused(NamedTuple):
    """How a call went, for its transcript: the key it is filed under, and the stored call it came
    from ("<run folder>/<call id>"), if any."""

    key: str | None = None
    source: str | None = None


class _Plan(NamedTuple):
    """What to do with a trace whose key has a stored trace."""

    mode: ReuseMode
    stored: StoredCall
    reason: str | None = None


class Reuser:
    """Looks calls up in a `TraceStore` and serves, continues or sends them (module docstring).

    ``keys``: compute keys even without a store (the run's transcripts file its calls under them,
    for later runs to reuse).
    """

    def __init__(self, store: TraceStore | None, ledger: RecordSink | None, keys: bool = True) -> None:
        self.store = store if store else None
        self.ledger = ledger
        self.keys = keys or self.store is not None
        self._traces: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def stream(
        self,
        plan: ModelPlan,
        lane: Lane,
        call: CallSpec,
        budgets: tuple[int, ...],
        make_consumer: Callable[[], TraceConsumer],
        commitments: tuple[float, ...] = (),
    ) -> tuple[CallResult, Reused]:
        """A trace: served from a stored one, continued from it, or streamed as usual.

        ``commitments``: the worst case of each budget's forced answer, which the trace's call
        reserves for its job (`runner.engine.spend`). A served trace makes no call, so it reserves
        nothing; a continued one commits only the answers past the stored trace's reach (those up
        to it answer the stored cuts: served where the stored run asked the same, else each
        reserves its own worst case as it starts).
        """
        if not self.keys:
            return await lane.call(call, make_consumer), Reused()
        key = trace_key(plan, call.request)
        self._remember(call, key)
        stored = self.store.trace(key) if self.store is not None else None
        if stored is None:
            return await lane.call(call, make_consumer), Reused(key)
        decided = _decide(plan, stored, budgets)
        if decided.mode == "served":
            served = self._serve_trace(lane, call, key, stored, make_consumer)
            if served is not None:
                return served, Reused(key, _source(stored))
            decided = _Plan("requested", stored, "its cuts did not come out the same from the stored text")
        if decided.mode == "continued":
            if commitments:
                new = sum(usd for budget, usd in zip(budgets, commitments, strict=True) if budget > (stored.reach or 0))
                call = dataclasses.replace(call, commits_usd=new)
            continued = await self._continue(plan, lane, call, budgets, (key, stored), make_consumer)
            return continued, Reused(key, _source(stored))
        self._record(lane, call, key, decided.stored, "requested", reason=decided.reason)
        return await lane.call(call, make_consumer), Reused(key)

    async def ask(
        self, plan: ModelPlan, lane: Lane, call: CallSpec, make_consumer: Callable[[], AnswerConsumer]
    ) -> tuple[CallResult, Reused]:
        """A call whose whole output is kept (a forced answer, ...): served from a stored one, or sent."""
        if not self.keys:
            return await lane.call(call, make_consumer), Reused()
        key = call_key(plan, call.request, self._traces.get((call.job_id, call.instance or "")))
        stored = self.store.call(key) if self.store is not None else None
        if stored is None or self.store is None:
            return await lane.call(call, make_consumer), Reused(key)
        record = self.store.record(stored)
        consumer = make_consumer()
        if record.reasoning:
            consumer.on_reasoning(record.reasoning)
        if record.content:
            consumer.on_content(record.content)
        output = consumer.output_tokens_counted()[0]
        result = _result(consumer, record.finish)
        self._record(
            lane,
            call,
            key,
            stored,
            "served",
            input_tokens=call.prompt_tokens,
            output_tokens=output,
            call_id=result.call_id,
        )
        return result, Reused(key, _source(stored))

    # ---- traces ---------------------------------------------------------------------------------

    def _serve_trace(
        self, lane: Lane, call: CallSpec, key: str, stored: StoredCall, make_consumer: Callable[[], TraceConsumer]
    ) -> CallResult | None:
        """Feed the stored trace to a new consumer as a stream would (the reasoning, then the answer
        text unless the last budget's cut came first); None if its cuts differ from the stored ones."""
        assert self.store is not None
        record = self.store.record(stored)
        consumer = make_consumer()
        # True once the last budget's cut is final: a stream would have been cut there
        cut_short = bool(record.reasoning) and consumer.on_reasoning(record.reasoning)
        if not cut_short and record.content:
            cut_short = consumer.on_content(record.content)
        output = consumer.output_tokens_counted()[0]
        if not _same_cuts(consumer, record):
            return None
        result = _result(consumer, "cancelled_at_budget" if cut_short else record.finish)
        self._record(
            lane,
            call,
            key,
            stored,
            "served",
            input_tokens=call.prompt_tokens,
            output_tokens=output,
            call_id=result.call_id,
        )
        return result

    async def _continue(
        self,
        plan: ModelPlan,
        lane: Lane,
        call: CallSpec,
        budgets: tuple[int, ...],
        found: tuple[str, StoredCall],
        make_consumer: Callable[[], TraceConsumer],
    ) -> CallResult:
        """One request with the stored text up to its reach as an assistant prefill; each attempt's
        consumer starts from that text and counts only what the stream adds."""
        assert self.store is not None
        key, stored = found
        record = self.store.record(stored)
        reach_cut = next(m for m in record.cuts if m.budget == stored.reach)
        prefix = record.content[: reach_cut.chars].rstrip()  # a prefill may not end in whitespace
        tokens = len(plan.encoding.encode_ordinary(prefix))
        request = calls.continuation_request(plan, call.request.messages, prefix, tokens, budgets, call.request.seed)
        continued = dataclasses.replace(call, request=request, prompt_tokens=calls.prompt_tokens(plan, request))

        def primed() -> TraceConsumer:
            consumer = make_consumer()
            consumer.prime(prefix, tokens)
            return consumer

        result = await lane.call(continued, primed)
        self._record(
            lane, call, key, stored, "continued", output_tokens=tokens, resent_tokens=tokens, call_id=result.call_id
        )
        return result

    # ---- the ledger ---------------------------------------------------------------------------------

    def _record(
        self,
        lane: Lane,
        call: CallSpec,
        key: str,
        stored: StoredCall,
        mode: ReuseMode,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        resent_tokens: int = 0,
        call_id: str = "",
        reason: str | None = None,
    ) -> None:
        if self.ledger is None:
            return
        saved = (
            reuse_usd(call.price, input_tokens, output_tokens, resent_tokens, stored.usd)
            if mode != "requested"
            else 0.0
        )
        self.ledger.append(
            Reuse(
                job_id=call.job_id,
                instance=call.instance,
                call_id=call_id or _served_id(),
                kind=call.kind,
                model=call.model,
                provider=lane.name,
                mode=mode,
                key=key,
                budget=call.budget,
                source_run=str(stored.run_dir),
                source_job_id=stored.job_id,
                source_call_id=stored.call_id,
                source_usd=stored.usd,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                resent_tokens=resent_tokens,
                usd=saved,
                reason=reason,
            )
        )

    def _remember(self, call: CallSpec, key: str) -> None:
        self._traces[(call.job_id, call.instance or "")] = key
        if len(self._traces) > _REMEMBERED:
            self._traces.popitem(last=False)


NO_REUSE = Reuser(None, None, keys=False)


def open_store(loaded: LoadedManifest, run_dir: Path) -> TraceStore:
    """The calls a run may reuse: its own folder's and the manifest's folder's (a ``--new-run``
    starts beside it; each if it has transcripts), and those of the runs ``run.reuse`` names
    (each must have them). The estimate reads the same (`runner.ledger.estimate`).

    Raises:
        ConfigError, NoTranscripts: a named run is not a run folder, or has no transcripts.
        TranscriptsCorrupt: a damaged transcripts member.
    """
    if not loaded.reuses:  # reuse turned off (`--no-reuse`), or batch mode: nothing serves
        return TraceStore.open([])
    named = loaded.reuse_dirs()
    return TraceStore.open([run_dir, loaded.run_dir(), *named], required=named)


def _decide(plan: ModelPlan, stored: StoredCall, budgets: tuple[int, ...]) -> _Plan:
    """Serve when the stored trace holds every cut; else continue it where the protocol can."""
    if stored.serves(budgets[-1]):
        return _Plan("served", stored)
    traced = calls.traced_channel(plan)
    if continues_trace(plan.provider_kind, traced, thinking=traced == "reasoning"):
        return _Plan("continued", stored)
    reason = (
        f"the stored trace reaches {stored.reach} tokens and the last budget is {budgets[-1]}; "
        f"{plan.provider_kind} cannot continue a {'reasoning' if traced == 'reasoning' else 'chain-of-thought'} "
        "trace, so it was requested again"
    )
    return _Plan("requested", stored, reason)


def _same_cuts(consumer: TraceConsumer, record: CallText) -> bool:
    """The cuts made again land where the stored trace's did (same tokens, same characters)."""
    for mark in record.cuts:
        cut = consumer.cuts.get(mark.budget)
        if cut is not None and (cut.tokens != mark.tokens or len(cut.text) != mark.chars):
            return False
    return True


def _result(consumer: TraceConsumer | AnswerConsumer, finish: str) -> CallResult:
    return CallResult(consumer=consumer, usage=None, finish=finish, attempts=0, usd=0.0, call_id=_served_id())


def _served_id() -> str:
    return "reused-" + uuid.uuid4().hex[:9]


def _source(stored: StoredCall) -> str:
    return f"{stored.run_dir}/{stored.call_id}"


__all__ = ["NO_REUSE", "Reused", "Reuser", "open_store"]
