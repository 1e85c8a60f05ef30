"""What a call's text goes into: a budget tokenizer for traces, a plain buffer for answers.

Both can tell the pipeline when the provider starts producing output (``on_output``: its prompt
has been processed, so a request repeating it now reads the provider's cache), and the trace
consumer hands on each cut the moment it is final (``on_cut``), while the stream goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import tiktoken

from runner.tokens.budget import BudgetTokenizer, Cut


class _SignalsOutput:
    """Calls ``on_output`` once, at the first text of the response."""

    _on_output: Callable[[], None] | None = None

    def _output(self) -> None:
        if self._on_output is not None:
            on_output, self._on_output = self._on_output, None
            on_output()


class TraceConsumer(_SignalsOutput):
    """Feeds the traced text (reasoning, or content for chain-of-thought models) to the tokenizer.

    Asks the lane to cut the stream as soon as the last budget's cut is final. Text outside the
    trace (a reasoning model's own answer) is kept as the model's final answer.
    """

    def __init__(
        self,
        encoding: tiktoken.Encoding,
        budgets: tuple[int, ...],
        traced: str,
        *,
        on_cut: Callable[[Cut], None] | None = None,
        on_output: Callable[[], None] | None = None,
    ) -> None:
        self.encoding = encoding
        self.tokenizer = BudgetTokenizer(encoding, budgets)
        self.traced = traced  # "reasoning" or "content"
        self.cuts: dict[int, Cut] = {}
        self.own_answer: list[str] = []
        self.other_reasoning: list[str] = []
        self._final_counts: tuple[int, int] | None = None
        self.primed_tokens = 0  # tokens of a stored prefix the stream continues (not its output)
        # cuts made final by more text (not by the stream's end, which may yet turn out a failure)
        self._on_cut = on_cut
        self._on_output = on_output

    def _feed(self, text: str) -> bool:
        for cut in self.tokenizer.feed(text):
            self.cuts[cut.budget] = cut
            if self._on_cut is not None:
                self._on_cut(cut)
        return self.tokenizer.done

    def on_reasoning(self, text: str) -> bool:
        self._output()
        if self.traced == "reasoning":
            return self._feed(text)
        self.other_reasoning.append(text)
        return False

    def on_content(self, text: str) -> bool:
        self._output()
        if self.traced == "content":
            return self._feed(text)
        self.own_answer.append(text)
        return False

    def prime(self, text: str, tokens: int) -> None:
        """Start the traced text with a stored prefix the stream goes on from (a continued trace,
        `runner.engine.reuse`): cut as if streamed, but neither output (``tokens`` of it are left
        out of the count) nor a sign that the provider has started."""
        self.primed_tokens = tokens
        self._feed(text)

    def output_tokens_counted(self) -> tuple[int, int]:
        """Finalise the cuts and count everything received (idempotent); a primed prefix is not output."""
        if self._final_counts is None:
            for cut in self.tokenizer.finish():
                self.cuts[cut.budget] = cut
            traced = max(self.tokenizer.count - self.primed_tokens, 0)
            other = len(self.encoding.encode_ordinary("".join(self.own_answer)))
            other_reasoning = len(self.encoding.encode_ordinary("".join(self.other_reasoning)))
            reasoning = traced if self.traced == "reasoning" else other_reasoning
            self._final_counts = (traced + other + other_reasoning, reasoning)
        return self._final_counts

    @property
    def answer_text(self) -> str:
        return "".join(self.own_answer)


class AnswerConsumer(_SignalsOutput):
    """Collects a short answer; reasoning (if the model thinks before answering) is kept apart."""

    def __init__(self, encoding: tiktoken.Encoding, *, on_output: Callable[[], None] | None = None) -> None:
        self.encoding = encoding
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self._on_output = on_output

    def on_reasoning(self, text: str) -> bool:
        self._output()
        self.reasoning.append(text)
        return False

    def on_content(self, text: str) -> bool:
        self._output()
        self.content.append(text)
        return False

    def output_tokens_counted(self) -> tuple[int, int]:
        reasoning = len(self.encoding.encode_ordinary("".join(self.reasoning)))
        return len(self.encoding.encode_ordinary("".join(self.content))) + reasoning, reasoning

    @property
    def text(self) -> str:
        content = "".join(self.content)
        # a reasoning model that spent its cap thinking still said something: grade that
        return content if content.strip() else "".join(self.reasoning)
