"""What a call's text goes into: a budget tokenizer for traces, a plain buffer for answers."""

from __future__ import annotations

import tiktoken

from runner.tokens.budget import BudgetTokenizer, Cut


class TraceConsumer:
    """Feeds the traced text (reasoning, or content for chain-of-thought models) to the tokenizer.

    Asks the lane to cut the stream as soon as the last budget's cut is final. Text outside the
    trace (a reasoning model's own answer) is kept as the model's final answer.
    """

    def __init__(self, encoding: tiktoken.Encoding, budgets: tuple[int, ...], traced: str) -> None:
        self.encoding = encoding
        self.tokenizer = BudgetTokenizer(encoding, budgets)
        self.traced = traced  # "reasoning" or "content"
        self.cuts: dict[int, Cut] = {}
        self.own_answer: list[str] = []
        self.other_reasoning: list[str] = []
        self._final_counts: tuple[int, int] | None = None

    def _feed(self, text: str) -> bool:
        for cut in self.tokenizer.feed(text):
            self.cuts[cut.budget] = cut
        return self.tokenizer.done

    def on_reasoning(self, text: str) -> bool:
        if self.traced == "reasoning":
            return self._feed(text)
        self.other_reasoning.append(text)
        return False

    def on_content(self, text: str) -> bool:
        if self.traced == "content":
            return self._feed(text)
        self.own_answer.append(text)
        return False

    def output_tokens_counted(self) -> tuple[int, int]:
        """Finalise the cuts and count everything received (idempotent)."""
        if self._final_counts is None:
            for cut in self.tokenizer.finish():
                self.cuts[cut.budget] = cut
            traced = self.tokenizer.count
            other = len(self.encoding.encode_ordinary("".join(self.own_answer)))
            other_reasoning = len(self.encoding.encode_ordinary("".join(self.other_reasoning)))
            reasoning = traced if self.traced == "reasoning" else other_reasoning
            self._final_counts = (traced + other + other_reasoning, reasoning)
        return self._final_counts

    @property
    def answer_text(self) -> str:
        return "".join(self.own_answer)


class AnswerConsumer:
    """Collects a short answer; reasoning (if the model thinks before answering) is kept apart."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding
        self.content: list[str] = []
        self.reasoning: list[str] = []

    def on_reasoning(self, text: str) -> bool:
        self.reasoning.append(text)
        return False

    def on_content(self, text: str) -> bool:
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
