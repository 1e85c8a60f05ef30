"""What one job costs, given how its trace behaves: the estimate's model of a run.

A job's shape (`JobShape`: its planned prompts, counted exactly by `runner.config.calls`) and a
`TraceSample` (how long the trace ran, what it billed, how long its answers were; from a prior or
from a ledger) decide its calls and tokens the way the run makes them: the distinct cuts and
their answers, which numbers price the trace (a stream cut at its last budget never gets its
usage), and which prompt tokens a provider serves from its cache under the answer schedule
(`Setting`). `Use.usd` prices them like the ledger does.

One function per answer schedule part, so that another mode (batch prices, reused traces) adds
its own pricing beside these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from runner.config.kinds import PromptCaching
from runner.ledger.prices import PER, ModelPrice

# tokens a cut stream delivers past its last budget before it is cancelled (the chunk crossing it)
OVERSHOOT = 8
# tokens a cut may gain or lose where it meets the prompt around it (BPE merges at the seams)
SEAM = 2


@dataclass
class Use:
    """Calls and tokens of some work, split the way prices split them."""

    calls: float = 0.0  # requests the jobs decide to make
    input: float = 0.0
    cached: float = 0.0  # input tokens read from a prompt cache
    written: float = 0.0  # input tokens written to a prompt cache (Anthropic bills them above input)
    output: float = 0.0
    attempts: float = 0.0  # what is sent for the calls, retries included (what RPM counts)

    def add(self, other: Use, times: float = 1.0) -> None:
        self.calls += other.calls * times
        self.input += other.input * times
        self.cached += other.cached * times
        self.written += other.written * times
        self.output += other.output * times
        self.attempts += other.attempts * times

    def usd(self, price: ModelPrice) -> float:
        cached_price = price.cached_input if price.cached_input is not None else price.input
        write_price = price.cache_write_input if price.cache_write_input is not None else price.input
        plain = max(self.input - self.cached - self.written, 0.0)
        return (
            plain * price.input + self.cached * cached_price + self.written * write_price + self.output * price.output
        ) / PER

    def usd_uncached(self, price: ModelPrice) -> float:
        """What the same tokens would cost if no prompt cache served or stored any of them."""
        return (self.input * price.input + self.output * price.output) / PER


@dataclass(frozen=True)
class JobShape:
    """A job's planned calls, counted (tokens): what its cost depends on besides its trace.

    Attributes:
        budgets: the cut budgets.
        trace_prompt: the trace call's prompt (hidden reasoning: each per-budget call's prompt).
        trace_cap: the trace call's output cap.
        group_prefix: prompt tokens every trace of the group shares (a method's preface), else 0.
        answer_prompt: a forced answer's prompt with an empty cut.
        answer_head: its tokens before the cut (the same at every budget).
        answer_lead: its tokens the trace call has cached (its lead), else 0.
        answer_cap: a forced answer's output cap.
    """

    budgets: tuple[int, ...]
    trace_prompt: int
    trace_cap: int
    group_prefix: int = 0
    answer_prompt: int = 0
    answer_head: int = 0
    answer_lead: int = 0
    answer_cap: int = 0


class TraceSample(NamedTuple):
    """How one trace behaved (observed in a ledger, or a point of a prior).

    Attributes:
        traced: tokens of the text its cuts are taken from (a summary, for summarised models) when
            it ended, or where it was cut.
        ended: it ended by itself (else it was cut at its last budget).
        output: output tokens it billed (hidden thinking included), own answer included.
        answer_output: output tokens of each of its forced answers.
        retries: attempts its job's calls took beyond one each (failed, broken or refused ones).
        retry_input: input tokens those attempts were billed.
        retry_output: output tokens those attempts were billed.
    """

    traced: float
    ended: bool
    output: float
    answer_output: float
    retries: float = 0.0
    retry_input: float = 0.0
    retry_output: float = 0.0


@dataclass(frozen=True)
class Setting:
    """How a model's calls are served and billed.

    Attributes:
        fidelity: raw | content | summarised | hidden.
        caching: the provider's prompt caching (None: none that is billed lower).
        cache_aware: the run sends answers at cut time and marks shared prefixes (``run.answers``).
        prompt_stated: the provider states a stream's prompt usage when it starts (Anthropic),
            so a cut trace's prompt is still priced with its cache reads and writes.
        group_hit: the share of the group's traces that read its shared prefix from the cache.
        group_write: the share that write it (explicit caching: the group's first trace).
    """

    fidelity: str
    caching: PromptCaching | None
    cache_aware: bool
    prompt_stated: bool = False
    group_hit: float = 0.0
    group_write: float = 0.0


def cached_part(caching: PromptCaching | None, shared: float) -> float:
    """Tokens of a ``shared`` prefix an automatic cache serves: whole steps, from its minimum."""
    if caching is None or caching.explicit or shared < caching.minimum:
        return 0.0
    return float(int(shared) // caching.step * caching.step)


def job_use(shape: JobShape, sample: TraceSample, setting: Setting) -> Use:
    """One job's calls and tokens, given how its trace behaves (its retries included)."""
    if setting.fidelity == "hidden":
        use = hidden_use(shape, sample)
    else:
        last = shape.budgets[-1]
        ended = sample.ended and sample.traced <= last
        length = sample.traced if ended else last
        cuts = sorted({float(min(b, length)) for b in shape.budgets})
        use = trace_use(shape, sample, setting, ended)
        use.add(answers_use(shape, cuts, sample.answer_output, setting))
    use.add(Use(input=sample.retry_input, output=sample.retry_output, attempts=use.calls + sample.retries))
    return use


def trace_use(shape: JobShape, sample: TraceSample, setting: Setting, ended: bool) -> Use:
    """The trace call: its prompt (cache reads where its usage prices it) and its output."""
    last = shape.budgets[-1]
    if ended:
        output = sample.output
    elif setting.fidelity == "content":
        output = float(last)  # a chain-of-thought trace stops at its cap, the last budget
    else:
        output = sample.output if sample.traced == last and not sample.ended else float(last + OVERSHOOT)
    use = Use(calls=1, input=shape.trace_prompt, output=output)
    # only a usage record (or a prompt stated at the start) shows cache hits: a cut stream priced
    # from our own count pays its whole prompt at the input price
    if ended or setting.fidelity == "content" or setting.prompt_stated:
        use.cached, use.written = _trace_cache(shape, setting)
    return use


def _trace_cache(shape: JobShape, setting: Setting) -> tuple[float, float]:
    caching = setting.caching
    if caching is None:
        return 0.0, 0.0
    if not caching.explicit:
        return setting.group_hit * cached_part(caching, shape.group_prefix), 0.0
    if not setting.cache_aware:
        return 0.0, 0.0  # nothing marked: an explicit cache caches nothing
    read = written = 0.0
    if shape.group_prefix >= caching.minimum:
        read, written = setting.group_hit * shape.group_prefix, setting.group_write * shape.group_prefix
    if shape.answer_lead and shape.trace_prompt >= caching.minimum:
        written += shape.trace_prompt - read  # the whole prompt, for its answers to read
    return read, written


def answers_use(shape: JobShape, cuts: list[float], answer_output: float, setting: Setting) -> Use:
    """The forced answers of the distinct cuts; at cut time each reads the previous one's prefix."""
    use = Use()
    for i, cut in enumerate(cuts):
        prompt = shape.answer_prompt + cut
        use.add(Use(calls=1, input=prompt, output=answer_output))
        if not setting.cache_aware or setting.caching is None:
            continue  # after the trace: sent at once, no answer finds another's prefix cached
        shared = shape.answer_lead if i == 0 else shape.answer_head + cuts[i - 1] - SEAM
        if not setting.caching.explicit:
            use.cached += min(cached_part(setting.caching, shared), prompt)
            continue
        minimum = setting.caching.minimum
        read = shared if shared >= minimum else 0.0
        mine = shape.answer_head + cut
        followed = i < len(cuts) - 1
        use.cached += read
        use.written += mine - read if followed and mine >= minimum else 0.0
    return use


def hidden_use(shape: JobShape, sample: TraceSample) -> Use:
    """Hidden reasoning: one call per budget, its thinking and answer under the budget as cap."""
    use = Use()
    for b in shape.budgets:
        use.add(Use(calls=1, input=shape.trace_prompt, output=min(sample.traced + sample.answer_output, b)))
    return use


def high_use(shape: JobShape, setting: Setting) -> Use:
    """The most a job can use: its trace to the cap, one answer per budget to the cap, no cache hit
    (retries aside: a refused attempt is not billed, and the spend cap holds a retried stream)."""
    k = len(shape.budgets)
    if setting.fidelity == "hidden":
        return Use(calls=k, input=k * shape.trace_prompt, output=sum(shape.budgets), attempts=k)
    answers = k * (shape.answer_prompt + SEAM) + sum(shape.budgets)
    output = shape.trace_cap + k * shape.answer_cap
    return Use(calls=1 + k, input=shape.trace_prompt + answers, output=output, attempts=1 + k)


def high_usd(use: Use, price: ModelPrice) -> float:
    """The bill's bound: every prompt token at the dearer of input and cache write, no cache hit."""
    prompt_price = max(price.input, price.cache_write_input or 0.0)
    return (use.input * prompt_price + use.output * price.output) / PER
