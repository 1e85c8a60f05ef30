"""The model logic: deterministic reasoning traces whose candidate answers converge with length.

A trace is filler reasoning that states its current candidate every so often. The candidate at
token position t is right with probability ``p(t) = p_max * (1 - exp(-t / tau))``, where
``p_max`` and ``tau`` come from the model's skill (and the problem's difficulty). Each trace draws
its thresholds once, so a candidate that has become right stays right as the trace grows:
quality rises with the budget, and faster and higher for a stronger model.

A forced-answer request (the prompt holds ``<reasoning_so_far>…</reasoning_so_far>``) is
answered from that block: the last candidate stated in it, formatted for the task. Nothing here
looks at which prompting method built a prompt.

A request that ends with an assistant turn on a protocol that continues one (Anthropic's
prefill; ``GenRequest.prefill``) continues that text: when it is the start of what the same
request without it would generate, the rest of that generation follows (the model is
deterministic, so continuing its own words gives what it would have said); otherwise the
generation of the whole conversation follows, as a model would go on from someone else's words.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import OrderedDict
from collections.abc import Sequence

import msgspec

from anytime_sim.knowledge import ProblemIndex
from anytime_sim.models import SimModel
from anytime_sim.tasks import TASKS, Answer, TaskLogic, parse_any
from runner.tasks.base import Problem
from runner.tokens.encodings import get_encoding

FORCED_OPEN = "<reasoning_so_far>"
FORCED_CLOSE = "</reasoning_so_far>"
# out-of-vocabulary ids standing for chat framing in prompt-cache hashes
_FRAME = 1 << 30
_ROLES = {"system": _FRAME + 1, "developer": _FRAME + 1, "user": _FRAME + 2, "assistant": _FRAME + 3}
_EFFORT = {"minimal": 0.25, "low": 0.5, "medium": 1.0, "high": 1.5}

_FILLER = (
    " Let me reconsider the {w} from the start.",
    " First, I will restate what the problem gives us about the {w}.",
    " Suppose the {w} equals {a}; then the second condition forces {b}.",
    " That does not match, so I should check the case with {a} instead.",
    " Checking the {w} again: {a} plus {b} gives {c}.",
    " Wait, I may have dropped a factor of {a} in the previous step.",
    " Let me verify this against the original constraint on the {w}.",
    " If I split the {w} into {a} parts, each part contributes {b}.",
    " Hmm, the symmetry of the {w} suggests a simpler route.",
    " Let me count the cases one by one to be careful.",
    " The {w} cannot exceed {c}, which rules out the larger option.",
    " I will write the relation between the {w} and the remaining terms.",
    " Substituting back, the {w} is consistent with {a} and {b}.",
    " Another approach is to bound the {w} from both sides.",
    " Let me double check the arithmetic: {a} times {b} is {d}.",
    " That step looks right, so I can move on to the {w}.",
    " Actually, the order of the {w} matters here, so let me redo it.",
    " The edge case with {a} needs a separate look.",
    " Combining the two observations narrows the {w} down.",
    " I should make sure no constraint on the {w} is violated.\n\n",
    " Now I will organise what I have so far.\n\n",
)
_WORDS = (
    "constraint",
    "sum",
    "first case",
    "remainder",
    "ordering",
    "schedule",
    "count",
    "boundary",
    "second case",
    "total",
    "assumption",
    "difference",
    "last step",
    "middle term",
    "option",
)


class Generation(msgspec.Struct, kw_only=True):
    """What a request will produce, as token ids of ``o200k_base``.

    Attributes:
        reasoning: the full reasoning, as billed.
        summary: the part of the reasoning a summarising protocol shows (Anthropic, Responses).
        content: the visible answer (for a chain-of-thought model, the whole trace and answer).
        task: the task recognised ("" if no known problem).
        forced: whether this answers a forced-answer prompt.
    """

    reasoning: list[int]
    summary: list[int]
    content: list[int]
    task: str = ""
    forced: bool = False


class GenRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The request facts the model logic depends on, whatever the wire dialect."""

    model: str
    messages: tuple[tuple[str, str], ...]  # (role, text)
    seed: int | None = None
    max_output: int | None = None  # cap on all generated tokens
    reasoning_budget: int | None = None  # thinking budget (Anthropic, Gemini)
    reasoning_on: bool = True  # False: thinking disabled for this request
    effort: str | None = None
    # the last turn is an assistant text the response continues (Anthropic's prefill); it is
    # also the last of ``messages`` (it is part of the prompt)
    prefill: str | None = None


# (model, messages, seed, max_output, reasoning_budget, reasoning_on, effort, prefill): what a generation depends on
_GenerationKey = tuple[
    str, tuple[tuple[str, str], ...], int | None, int | None, int | None, bool, str | None, str | None
]


def _hash_int(*parts: object) -> int:
    digest = hashlib.blake2b(repr(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(*parts: object) -> float:
    return _hash_int(*parts) / 2.0**64


_STOPWORDS = frozenset({"which", "there", "their", "these", "those", "where", "would", "could", "about", "given"})


def _keywords(text: str) -> tuple[list[str], list[int]]:
    """A few ASCII words and small numbers of a problem statement."""
    words = list(dict.fromkeys(w.lower() for w in re.findall(r"\b[A-Za-z]{5,12}\b", text)))
    words = [w for w in words if w not in _STOPWORDS][:16]
    numbers = list(dict.fromkeys(int(n) for n in re.findall(r"\b\d{1,3}\b", text)))[:12]
    return words, numbers


def _closing(logic: TaskLogic, answer: object) -> str:
    return " I have checked this enough." + logic.statement(answer) + "\n\n"


def _last_user(messages: Sequence[tuple[str, str]]) -> str:
    for role, text in reversed(messages):
        if role == "user":
            return text
    return messages[-1][1] if messages else ""


class _Convergence:
    """How fast a trace's candidates become right: ``p(t)`` of the module docstring, for one trace."""

    __slots__ = ("interval", "p_max", "tau", "thresholds")

    def __init__(self, model: SimModel, difficulty: float, n_units: int, quality: random.Random) -> None:
        self.p_max = (0.15 + 0.8 * model.skill) * (1.0 - 0.35 * difficulty)
        # convergence speed in tokens depends on skill alone, so a weak model is never faster
        self.tau = 250.0 + 1500.0 * (1.0 - model.skill)
        self.thresholds = [quality.random() for _ in range(n_units)]
        # tokens between two stated candidates, on average
        self.interval = min(max(model.natural_tokens / 15.0, 80.0), 300.0)

    def right_at(self, t: int) -> int:
        """How many of the answer's units are right in a candidate stated at token ``t``."""
        p = self.p_max * (1.0 - math.exp(-t / self.tau))
        return sum(1 for u in self.thresholds if u < p)


class TraceModel:
    """Builds `Generation`s for one simulator; caches recent ones (retries and benchmarks repeat)."""

    def __init__(self, index: ProblemIndex, cache_size: int = 512) -> None:
        self.index = index
        self.encoding = get_encoding("o200k_base")
        self._cache: OrderedDict[_GenerationKey, Generation] = OrderedDict()
        self._cache_size = cache_size
        self._encoded: dict[str, list[int]] = {}

    def prompt_tokens(self, messages: Sequence[tuple[str, str]], primer: bool = True) -> list[int]:
        """The prompt as tokens: each message's role and content behind 3 framing tokens (OpenAI's
        cookbook count), then the 3-token reply primer. The framing ids only feed the prompt cache's
        hashes."""
        tokens: list[int] = []
        for role, text in messages:
            tokens += (_FRAME, _ROLES.get(role, _FRAME), _FRAME)
            tokens += self.encoding.encode_ordinary(role)
            tokens += self.encoding.encode_ordinary(text)
        if primer:
            tokens += (_FRAME, _ROLES["assistant"], _FRAME)
        return tokens

    def block_tokens(self, turns: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[int], list[int]]:
        """A prompt of text blocks as tokens, each block encoded on its own (a provider that caches
        at block boundaries must), and the token offset where each block ends."""
        tokens: list[int] = []
        ends: list[int] = []
        for role, blocks in turns:
            tokens += (_FRAME, _ROLES.get(role, _FRAME), _FRAME)
            tokens += self.encoding.encode_ordinary(role)
            for text in blocks:
                tokens += self.encoding.encode_ordinary(text)
                ends.append(len(tokens))
        return tokens, ends

    def count_prompt(self, messages: Sequence[tuple[str, str]]) -> int:
        """Prompt tokens: roles and contents with OpenAI's 3-token framing, plus the reply primer."""
        return (
            sum(
                3 + len(self.encoding.encode_ordinary(role)) + len(self.encoding.encode_ordinary(text))
                for role, text in messages
            )
            + 3
        )

    def generate(self, model: SimModel, req: GenRequest) -> Generation:
        key: _GenerationKey = (
            model.name,
            req.messages,
            req.seed,
            req.max_output,
            req.reasoning_budget,
            req.reasoning_on,
            req.effort,
            req.prefill,
        )
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        generation = self._continued(model, req) if req.prefill is not None else self._generate(model, req)
        self._cache[key] = generation
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return generation

    def _continued(self, model: SimModel, req: GenRequest) -> Generation:
        """The answer text after an assistant prefill (see the module docstring); thinking is off
        (the dialect refuses a prefill with thinking on, as Anthropic does)."""
        prefill = req.prefill or ""
        without = msgspec.structs.replace(req, messages=req.messages[:-1], prefill=None, max_output=None)
        own = self.encoding.decode(self.generate(model, without).content)
        if not own.startswith(prefill):
            own = self.encoding.decode(self._generate(model, msgspec.structs.replace(req, prefill=None)).content)
            prefill = ""
        text = own[len(prefill) :]
        return Generation(reasoning=[], summary=[], content=self._encode(text), task=self.generate(model, without).task)

    def _encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def _unit_len(self, text: str) -> int:
        # filler sentences repeat; counting them once keeps long traces cheap
        tokens = self._encoded.get(text)
        if tokens is None:
            tokens = self._encode(text)
            if len(self._encoded) < 200_000:
                self._encoded[text] = tokens
        return len(tokens)

    def _generate(self, model: SimModel, req: GenRequest) -> Generation:
        prompt = _last_user(req.messages)
        opened, closed = prompt.rfind(FORCED_OPEN), prompt.rfind(FORCED_CLOSE)
        forced = opened >= 0 and closed > opened
        # a forced answer states its problem before the reasoning: searching only that part lets
        # every budget's answer call of one trace share a single index lookup (the index caches)
        problem = self.index.find(prompt[:opened]) if forced else None
        if problem is None:
            problem = self.index.find(prompt)
        if problem is None and len(req.messages) > 1:
            # a method may put the problem in the system turn and only the reasoning in the user turn
            problem = self.index.find("\n\n".join(text for _, text in req.messages))
        logic = TASKS[problem.task] if problem is not None and problem.task in TASKS else TASKS["aime"]
        task = problem.task if problem is not None else ""
        if forced:
            block = prompt[opened + len(FORCED_OPEN) : closed]
            # the answer depends on the problem and the reasoning shown, never on how the rest of
            # the prompt is laid out: two layouts of the same cut get the same answer
            identity = problem.statement if problem is not None else prompt[:opened]
            rng = random.Random(_hash_int("forced", model.name, identity, block, req.seed))
            return self._forced(logic, problem is not None, block, rng, prompt, task)
        rng = random.Random(_hash_int(model.name, req.messages, req.seed))
        gold = logic.gold(problem, prompt) if problem is not None else None
        thinking = model.reasoning and req.reasoning_on
        final_room = 48 if logic.kind in ("aime", "gpqa", "calendar") else 320
        # how good this trace is depends on (model, problem, seed) only, never on the rest of the
        # prompt: two methods asking the same problem with the same seed get the same chances
        identity = problem.statement if problem is not None else prompt
        quality = random.Random(_hash_int("quality", model.name, identity, req.seed))
        target = self._target_length(model, req, quality, thinking, final_room)
        # nothing past the output cap is ever served: stop generating a little after it
        limit = req.max_output + 16 if req.max_output is not None else None
        units, summary_units, answer = self._trace(model, logic, gold, problem, prompt, rng, quality, target, limit)
        final = logic.final(answer)
        trace_text = "".join(units)
        if thinking:
            return Generation(
                reasoning=self._encode(trace_text),
                summary=self._encode("".join(summary_units)),
                content=self._encode(final),
                task=task,
            )
        # one text, encoded once: a client counting the streamed content gets the same number
        return Generation(reasoning=[], summary=[], content=self._encode(trace_text + final), task=task)

    def _target_length(
        self, model: SimModel, req: GenRequest, rng: random.Random, thinking: bool, final_room: int
    ) -> int:
        natural = model.natural_tokens * _EFFORT.get(req.effort or "medium", 1.0)
        natural *= math.exp(rng.gauss(0.0, 0.25))
        target = int(min(max(natural, 0.4 * model.natural_tokens), 2.5 * model.natural_tokens))
        if thinking and req.reasoning_budget is not None and req.reasoning_budget > 0:
            target = min(target, req.reasoning_budget)
        if thinking and model.profile == "openai_hidden" and req.max_output is not None:
            # hidden reasoners plan their thinking to leave room for the answer under the cap
            target = min(target, max(req.max_output - final_room, 0))
        return target

    def _trace(
        self,
        model: SimModel,
        logic: TaskLogic,
        gold: Answer | None,
        problem: Problem | None,
        prompt: str,
        rng: random.Random,
        quality: random.Random,
        target: int,
        limit: int | None = None,
    ) -> tuple[list[str], list[str], Answer]:
        statement_id = problem.statement if problem is not None else prompt
        n_units = logic.units(gold) if gold is not None else 1
        convergence = _Convergence(model, _unit("difficulty", statement_id), n_units, quality)
        interval = convergence.interval
        next_at = interval * quality.uniform(0.4, 1.0)
        units: list[str] = []
        summary: list[str] = []
        answer: Answer | None = None
        t = 0
        fallback = logic.wrong(gold, rng, prompt)
        answer_right = -1
        words, numbers = _keywords(statement_id if problem is not None else "")
        while limit is None or t < limit:
            stated = t >= next_at
            if stated:
                right = convergence.right_at(t)
                candidate = answer
                # a wrong answer may linger a while; a change in how much is right always shows
                if answer is None or right != answer_right or rng.random() < 0.6:
                    candidate = logic.candidate(gold, right, rng, prompt)
                text = logic.statement(candidate)
            else:
                candidate, text = answer, self._filler(rng, words, numbers)
            size = self._unit_len(text)
            # the whole trace, closing included, stays within the target (a thinking budget is a cap)
            if t + size + self._unit_len(_closing(logic, candidate if candidate is not None else fallback)) > target:
                break
            answer = candidate
            if stated:
                answer_right = right
            units.append(text)
            if stated:
                summary.append(text)
                next_at = t + interval * quality.uniform(0.6, 1.4)
            elif rng.random() < 0.25:
                summary.append(text)
            t += size
        if answer is None:
            answer = fallback
        closing = _closing(logic, answer)
        if (limit is None or t < limit) and t + self._unit_len(closing) <= target:
            units.append(closing)
            summary.append(closing)
        return units, summary, answer

    @staticmethod
    def _filler(rng: random.Random, words: Sequence[str], numbers: Sequence[int]) -> str:
        # the problem's own words and numbers make the filler read as if it were about it
        a = rng.choice(numbers) if numbers and rng.random() < 0.4 else rng.randint(2, 60)
        b = rng.randint(2, 60)
        word = rng.choice(words) if words and rng.random() < 0.5 else rng.choice(_WORDS)
        return rng.choice(_FILLER).format(w=word, a=a, b=b, c=a + b, d=a * b)

    def _forced(
        self, logic: TaskLogic, known: bool, block: str, rng: random.Random, prompt: str, task: str
    ) -> Generation:
        found = logic.parse_last(block)
        if found is not None:
            answer = found[1]
        elif not known and (anything := parse_any(block)) is not None:
            logic, answer = anything
        else:
            answer = logic.wrong(None, rng, prompt)
        return Generation(reasoning=[], summary=[], content=self._encode(logic.final(answer)), task=task, forced=True)
