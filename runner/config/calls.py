"""The calls a job makes: every runtime decision that `anytime run` and `anytime estimate` share.

A job is one trace of one problem by one model with one method. What it sends is decided here
and nowhere else: the trace request (output cap, thinking budget), the forced-answer request at
each budget (its prompt and cap), the hidden-reasoning fallback (one call per budget), the PDP /
LEAP synthesis calls (pool x k traces at the synthesis budget, their answers, LEAP's principles
call) and the key synthesis is filed under. The pipeline builds its requests with these
functions; the estimate prices the same requests. A test runs a manifest on the simulator and
checks that every call in the ledger is one of `planned_calls` of its job.

It also decides what a request shares with others (docs/caching.md): with ``run.answers =
"at_cut"`` a forced answer opens with the Base trace prompt and, one budget after the other,
repeats the previous answer's prompt up to its cut; a trace of a method with a preface shares
everything before its problem with the group's other traces. Those prefixes are the request's
`CachePoint`s, which a provider that caches only where told (Anthropic) marks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import msgspec
import tiktoken

from runner.config.fidelity import fidelity_for
from runner.config.kinds import SIMULATOR_ENCODING, THINKING_BUDGET_KINDS, min_thinking_budget, served_by_simulator
from runner.config.manifest import LoadedManifest, Model
from runner.config.plan import (
    Job,
    expand_jobs,
    get_task,
    method_definition,
    model_definition,
    stable_hash,
    synthesis_budget,
    synthesis_pool,
)
from runner.errors import EncodingUnavailable
from runner.tasks.base import Problem, Rendered, Task
from runner.tasks.methods import MethodStrategy, answer_prompt, base_prompt, get_method
from runner.tokens.count import count_chat_tokens
from runner.tokens.encodings import resolve_encoding
from runner.types import CachePoint, CallKind, ChatRequest, Message

# the output cap of LEAP's one principle-writing call
LEAP_PRINCIPLES_CAP = 1024
# tokens a batch trace may run past its last budget: the cut there is final only once the text
# runs on a little (the tokenizer's last piece at the budget must be whole), as a stream reads on
BATCH_CUT_MARGIN = 32
# seconds to the first bytes, and of silence after them, when the manifest does not say: a model
# whose reasoning is hidden sends nothing while it thinks; a thinking summary arrives in bursts
FIRST_TOKEN_S = {"hidden": 900.0, "summarised": 300.0, "raw": 120.0, "content": 120.0}
IDLE_S = {"hidden": 900.0, "summarised": 180.0, "raw": 60.0, "content": 60.0}


@dataclass(frozen=True)
class ModelPlan:
    """How one manifest model is called and counted.

    Attributes:
        key: the model's key in the manifest.
        config: its manifest table.
        provider_kind: the kind of its provider.
        fidelity: raw | content | summarised | hidden (the manifest's, else from the model id).
        encoding: the tiktoken encoding its tokens are counted with.
        approximate: counts are not the model's own tokenizer's.
        warning: an encoding fallback to show once (None: none happened).
        fidelity_note: the fidelity was a guess for a model the table does not know (None: it was not).
        min_thinking_budget: the smallest thinking budget its protocol accepts.
        first_token_s: seconds allowed to the first bytes of a response.
        idle_s: seconds of silence allowed after them.
        answers: when its forced answers are sent: "at_cut" (cache-aware) or "after_trace".
        base_url: its provider's ``base_url`` as the manifest gives it (None: the kind's own).
    """

    key: str
    config: Model
    provider_kind: str
    fidelity: str
    encoding: tiktoken.Encoding
    approximate: bool
    warning: str | None
    min_thinking_budget: int
    first_token_s: float
    idle_s: float
    fidelity_note: str | None = None
    answers: str = "at_cut"
    base_url: str | None = None

    @property
    def notes(self) -> list[str]:
        """What the user should read once before the run: an encoding fallback, a guessed fidelity."""
        return [f"models.{self.key}: {n}" for n in (self.warning, self.fidelity_note) if n]

    @property
    def cache_aware(self) -> bool:
        """Whether its requests are laid out and ordered for the provider's prompt cache."""
        return self.answers == "at_cut"


def default_timeouts(fidelity: str, first_token: float | None, idle: float | None) -> tuple[float, float]:
    """The manifest's first-token and idle timeouts, else the ones the fidelity needs."""
    return (
        first_token if first_token is not None else FIRST_TOKEN_S[fidelity],
        idle if idle is not None else IDLE_S[fidelity],
    )


def plan_model(loaded: LoadedManifest, key: str) -> ModelPlan:
    """Resolve a model's encoding and fidelity.

    Raises:
        EncodingUnavailable: the encoding cannot be loaded offline and the run says ``stop``
            (names the manifest and ``models.<key>.encoding``).
    """
    model = loaded.manifest.models[key]
    provider = loaded.manifest.providers[model.provider]
    try:
        resolved = resolve_encoding(model.encoding, model.model, loaded.manifest.run.on_missing_encoding)
    except EncodingUnavailable as exc:
        raise EncodingUnavailable(
            f"{loaded.path.name}: models.{key}.encoding: {exc} (run.on_missing_encoding is 'stop')"
        ) from None
    approximate = resolved.approximate
    if served_by_simulator(provider):
        # the simulator counts with this encoding: counting with it is exact there
        approximate = resolved.name != SIMULATOR_ENCODING
    fidelity, fidelity_note = (model.fidelity, None) if model.fidelity else fidelity_for(model.model, provider.kind)
    first_token, idle = default_timeouts(fidelity, provider.timeouts.first_token, provider.timeouts.idle)
    return ModelPlan(
        key=key,
        config=model,
        provider_kind=provider.kind,
        fidelity=fidelity,
        encoding=resolved.encoding,
        approximate=approximate,
        warning=resolved.warning,
        min_thinking_budget=min_thinking_budget(provider.kind),
        first_token_s=first_token,
        idle_s=idle,
        fidelity_note=fidelity_note,
        answers=loaded.manifest.run.answers,
        base_url=provider.base_url,
    )


def plan_models(loaded: LoadedManifest) -> dict[str, ModelPlan]:
    """Every selected model's plan, in manifest order."""
    return {key: plan_model(loaded, key) for key in loaded.selected("models")}


# ---- requests ---------------------------------------------------------------------------------


def request(
    model: ModelPlan,
    messages: tuple[Message, ...],
    cap: int,
    seed: int | None,
    thinking: int | None = None,
    cache_points: tuple[CachePoint, ...] = (),
) -> ChatRequest:
    """A request with the model's sampling settings."""
    return ChatRequest(
        model=model.config.model,
        messages=messages,
        max_output_tokens=cap,
        temperature=model.config.temperature,
        seed=seed,
        reasoning_effort=model.config.reasoning_effort,
        reasoning_budget=thinking,
        cache_points=cache_points if model.cache_aware else (),
    )


def traced_channel(model: ModelPlan) -> str:
    """What a trace cuts: the answer text of a chain-of-thought model, else the reasoning."""
    return "content" if model.fidelity == "content" else "reasoning"


def trace_request(
    model: ModelPlan, messages: tuple[Message, ...], budgets: tuple[int, ...], seed: int, shared: int = 0
) -> ChatRequest:
    """The one streamed trace of a job, long enough for its last budget.

    A reasoning model gets a thinking budget (protocols with one need it switched on) sized to the
    last budget, no smaller than the protocol accepts; its cap leaves room for the visible answer
    after the thinking. ``shared``: characters at the start of the prompt that other calls
    repeat (see `trace_shared_prefix`).
    """
    points = (CachePoint(0, shared),) if shared else ()
    if traced_channel(model) == "content":
        return request(model, messages, budgets[-1], seed, cache_points=points)
    thinking = max(budgets[-1], model.min_thinking_budget)
    return request(model, messages, thinking + model.config.trace_answer_tokens, seed, thinking, points)


# tokens a continued trace may need beyond the budget left, where the stored prefix meets the new text
CONTINUATION_SLACK = 16


def continuation_request(
    model: ModelPlan,
    messages: tuple[Message, ...],
    prefix: str,
    prefix_tokens: int,
    budgets: tuple[int, ...],
    seed: int | None,
) -> ChatRequest:
    """A chain-of-thought trace continued past a stored one's end: the stored text as an assistant
    prefill (``prefix``, trailing whitespace left out as Anthropic requires; ``prefix_tokens`` of
    it), capped at what is left to the last budget (docs/reuse.md)."""
    cap = max(budgets[-1] - prefix_tokens, 0) + CONTINUATION_SLACK
    return request(model, (*messages, Message("assistant", prefix)), cap, seed)


def batch_trace_request(
    model: ModelPlan, messages: tuple[Message, ...], budgets: tuple[int, ...], seed: int, shared: int = 0
) -> ChatRequest:
    """The trace of a job in batch mode: nothing can cut a batch request at its last budget, so its
    output cap is the last budget (and `BATCH_CUT_MARGIN`); the streamed request otherwise.

    A protocol whose thinking budget caps the reasoning itself (Anthropic, Gemini) keeps the
    streamed cap, which leaves room for the visible answer after it (Anthropic requires it).
    """
    streamed = trace_request(model, messages, budgets, seed, shared)
    if model.provider_kind in THINKING_BUDGET_KINDS:
        return streamed
    cap = min(streamed.max_output_tokens, budgets[-1] + BATCH_CUT_MARGIN)
    return msgspec.structs.replace(streamed, max_output_tokens=cap)


def trace_is_lead(task: Task, rendered: Rendered, messages: tuple[Message, ...]) -> bool:
    """Whether a trace prompt is word for word the lead of its forced answers (the Base prompt, no
    preface): the trace call then caches what its answers open with."""
    return len(messages) == 1 and messages[0].content == base_prompt(task, rendered)


def trace_shared_prefix(strategy: MethodStrategy, messages: tuple[Message, ...], rendered: Rendered) -> int:
    """Characters at the start of a trace prompt that other calls repeat: for a method with a
    preface, everything before the test problem (every trace of the group sends it alike); else
    the whole prompt (the lead of the job's forced answers). 0: none."""
    if len(messages) != 1:
        return 0
    if strategy.needs_synthesis:
        return max(messages[0].content.rfind(rendered.question), 0)
    return len(messages[0].content)


def answer_cap(model: ModelPlan, task: Task) -> int:
    """The output cap of a forced answer: the larger of the model's and the task's."""
    return max(model.config.answer_max_tokens, task.answer_max_tokens)


@dataclass(frozen=True)
class AnswerPlace:
    """Where a forced answer stands among the calls of its trace: what it shares with them.

    Attributes:
        lead_cached: the trace call's prompt is this prompt's lead (Base, no preface), so the
            provider has cached it.
        previous_cut: the cut of the answer sent before it (which cached everything up to that
            cut); None for the first.
        followed: an answer with a longer cut follows, so this one's prefix is worth caching.
    """

    lead_cached: bool = False
    previous_cut: str | None = None
    followed: bool = False


def answer_request(
    model: ModelPlan, task: Task, rendered: Rendered, partial_trace: str, place: AnswerPlace = AnswerPlace()
) -> ChatRequest:
    """The forced answer at one budget: the problem and the trace cut at the budget."""
    prompt = answer_prompt(task, rendered, partial_trace, shared=model.cache_aware)
    points: list[int] = []
    if place.lead_cached and prompt.lead:
        points.append(prompt.lead)
    if place.previous_cut:
        points.append(prompt.cut_start + len(place.previous_cut))
    if place.followed and partial_trace:
        points.append(prompt.cut_start + len(partial_trace))
    messages = (Message("user", prompt.text),)
    cache_points = tuple(CachePoint(0, offset) for offset in sorted(set(points)))
    return request(model, messages, answer_cap(model, task), None, cache_points=cache_points)


def answer_prompt_tokens(model: ModelPlan, task: Task, rendered: Rendered) -> int:
    """A forced answer's prompt tokens before its cut is added (what the spend cap sizes answers by)."""
    return prompt_tokens(model, answer_request(model, task, rendered, ""))


def hidden_request(model: ModelPlan, messages: tuple[Message, ...], budget: int, seed: int) -> ChatRequest:
    """Hidden reasoning: no trace to cut, so one call per budget with its output cap set to it."""
    return request(model, messages, budget, seed)


def principles_request(model: ModelPlan, messages: tuple[Message, ...]) -> ChatRequest:
    """LEAP's one call that writes principles from the pool's mistakes."""
    return request(model, messages, LEAP_PRINCIPLES_CAP, None)


def prompt_tokens(model: ModelPlan, chat: ChatRequest) -> int:
    """A request's prompt tokens, counted with the model's encoding."""
    return count_chat_tokens(model.encoding, chat.messages)


def prefix_tokens(model: ModelPlan, messages: tuple[Message, ...], offset: int) -> int:
    """Tokens of a prompt up to ``offset`` characters into its last message, framing included
    (the reply primer is not part of any cached prefix)."""
    *before, last = messages
    return count_chat_tokens(model.encoding, (*before, Message(last.role, last.content[:offset]))) - 3


# ---- synthesis --------------------------------------------------------------------------------


def synthesis_key(loaded: LoadedManifest, model: str, dataset: str, method: str) -> str:
    """The key a (model, dataset, method) group's synthesis is filed under in the ledger."""
    return stable_hash(
        {
            "model": model_definition(loaded, model),
            "method": method_definition(loaded, method, dataset, model),
            "dataset": dataset,
        }
    )


@dataclass(frozen=True)
class PoolSample:
    """One synthesis trace: a pool problem's k-th sample, and the job id its calls are ledgered under."""

    problem: Problem
    k: int
    job_id: str
    seed: int


def pool_samples(loaded: LoadedManifest, key: str, dataset: str, method: str) -> list[PoolSample]:
    """The synthesis traces of a group: k per pool problem, in pool order."""
    k = loaded.manifest.methods[method].k
    return [
        PoolSample(
            problem=problem,
            k=i,
            job_id=f"synthesis:{key}:{problem.id}:{i}",
            seed=int(stable_hash([key, problem.id, i])[:7], 16),
        )
        for problem in synthesis_pool(loaded, dataset)
        for i in range(k)
    ]


def principles_job_id(key: str) -> str:
    """The job id LEAP's principles call is ledgered under."""
    return f"synthesis:{key}:principles"


# ---- every call, for the estimate and the test that holds the run to it ----------------------------


@dataclass(frozen=True)
class PlannedCall:
    """A call a job may make, as the run would send it.

    ``request`` of a forced answer holds an empty cut: the run's prompt adds the cut's text (at
    most ``budget`` tokens). A trace that ends before a budget makes that budget's answer a reuse
    of the previous one, so the run makes at most these calls.

    ``prefix_tokens`` are what the estimate needs to price prompt caching: for a trace, the tokens
    every trace of its group shares (its method's preface; empty without one); for a forced
    answer, (the tokens of its lead that its trace call cached, the tokens before its cut).
    """

    job_id: str
    kind: CallKind
    model: str
    budget: int | None
    request: ChatRequest
    prompt_tokens: int
    prefix_tokens: tuple[int, ...] = ()


def job_calls(loaded: LoadedManifest, model: ModelPlan, job: Job, preface: str | None) -> list[PlannedCall]:
    """Every call of one evaluated job, given the method's preface (None: the method has none)."""
    task, strategy = _task_and_method(loaded, job.dataset, job.method)
    rendered = task.render(job.problem, job.seed)
    messages = strategy.trace_messages(task, rendered, preface)
    if model.fidelity == "hidden":
        hidden = [hidden_request(model, messages, b, job.seed) for b in job.budgets]
        return [_planned(model, job.job_id, "answer", b, r) for b, r in zip(job.budgets, hidden, strict=True)]
    # what the trace shares is known either way (a provider caching on its own finds it); only a
    # cache-aware run marks it in the request (`request` drops the points otherwise)
    shared = trace_shared_prefix(strategy, messages, rendered)
    trace = _planned(model, job.job_id, "trace", None, trace_request(model, messages, job.budgets, job.seed, shared))
    if shared and strategy.needs_synthesis:
        trace = replace(trace, prefix_tokens=(prefix_tokens(model, messages, shared),))
    answer = answer_request(model, task, rendered, "")
    prefixes = _answer_prefixes(model, task, rendered, answer.messages, trace_is_lead(task, rendered, messages))
    return [
        trace,
        *(replace(_planned(model, job.job_id, "answer", b, answer), prefix_tokens=prefixes) for b in job.budgets),
    ]


def _answer_prefixes(
    model: ModelPlan, task: Task, rendered: Rendered, messages: tuple[Message, ...], lead_cached: bool
) -> tuple[int, int]:
    """(tokens of the lead its trace call cached, tokens before the cut) of a forced-answer prompt."""
    prompt = answer_prompt(task, rendered, "", shared=model.cache_aware)
    lead = prefix_tokens(model, messages, prompt.lead) if lead_cached and prompt.lead else 0
    return lead, prefix_tokens(model, messages, prompt.cut_start)


def synthesis_calls(loaded: LoadedManifest, model: ModelPlan, dataset: str, method: str) -> list[PlannedCall]:
    """Every call of a group's synthesis stage (empty for methods without one)."""
    task, strategy = _task_and_method(loaded, dataset, method)
    if not strategy.needs_synthesis:
        return []
    key = synthesis_key(loaded, model.key, dataset, method)
    budget = synthesis_budget(loaded, method, dataset)
    calls: list[PlannedCall] = []
    for sample in pool_samples(loaded, key, dataset, method):
        rendered = task.render(sample.problem, sample.seed)
        messages = strategy.trace_messages(task, rendered, None)
        if model.fidelity == "hidden":
            calls.append(
                _planned(
                    model, sample.job_id, "synthesis", budget, hidden_request(model, messages, budget, sample.seed)
                )
            )
            continue
        shared = trace_shared_prefix(strategy, messages, rendered) if model.cache_aware else 0
        chat = trace_request(model, messages, (budget,), sample.seed, shared)
        calls.append(_planned(model, sample.job_id, "synthesis", None, chat))
        answer = answer_request(model, task, rendered, "")
        prefixes = _answer_prefixes(model, task, rendered, answer.messages, trace_is_lead(task, rendered, messages))
        calls.append(replace(_planned(model, sample.job_id, "synthesis", budget, answer), prefix_tokens=prefixes))
    if loaded.manifest.methods[method].kind == "leap":
        messages = strategy.principle_messages(task, [])
        calls.append(_planned(model, principles_job_id(key), "synthesis", None, principles_request(model, messages)))
    return calls


def planned_calls(loaded: LoadedManifest, preface: str | None = None) -> Iterator[PlannedCall]:
    """Every call of the sweep: each group's synthesis, then its jobs (``preface`` stands in for
    what synthesis will build)."""
    models = plan_models(loaded)
    seen: set[tuple[str, str, str]] = set()
    for job in expand_jobs(loaded):
        group = (job.model, job.dataset, job.method)
        if group not in seen:
            seen.add(group)
            yield from synthesis_calls(loaded, models[job.model], job.dataset, job.method)
        needs = _task_and_method(loaded, job.dataset, job.method)[1].needs_synthesis
        yield from job_calls(loaded, models[job.model], job, preface if needs else None)


def _planned(model: ModelPlan, job_id: str, kind: CallKind, budget: int | None, chat: ChatRequest) -> PlannedCall:
    return PlannedCall(
        job_id=job_id, kind=kind, model=model.key, budget=budget, request=chat, prompt_tokens=prompt_tokens(model, chat)
    )


def _task_and_method(loaded: LoadedManifest, dataset: str, method: str) -> tuple[Task, MethodStrategy]:
    params = loaded.manifest.methods[method]
    return get_task(loaded.manifest.datasets[dataset].kind), get_method(params.kind, params)
