"""GPQA: four-option questions, shuffled per (question, seed), graded by the chosen letter.

The user supplies the official CSV (``gpqa_diamond.csv`` / ``gpqa_main.csv``; it ships in a
password-protected archive and must not be redistributed). A ``.jsonl`` file with the same
column names (``data/gpqa_sample.jsonl``, synthetic questions) works too. The right option is
always the ``Correct Answer`` column, so the rendering places the four options under A-D itself,
deterministically per (problem id, seed), and the gold letter belongs to that rendering.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any, ClassVar

from runner.errors import DatasetError
from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.files import read_csv, read_jsonl, require, take
from runner.tasks.latex import boxed_contents, strip_wrappers, unwrap

LETTERS = ("A", "B", "C", "D")
_OPTION_FIELDS = (
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
)

# a choice as it is written after a phrase that states it: "C", "(c)", "**D**", "[B]", "option B",
# "\text{(A)}" (wrappers are removed first); a lowercase letter only when it cannot be the article
# "a" or a word: parenthesised, or followed by punctuation or the end ("answer is a subtle one" is prose)
_CHOICE = (
    r"(?i:(?:option|choice|letter)\s+)?"
    r"(?:\(([A-Da-d])\)|\[([A-Da-d])\]|([A-D])(?![\w'’-])|([a-d])(?=\s*(?:[.,;:!?)\]}*_$\\]|$)))"
)
# between a phrase and its choice: spaces, emphasis, math delimiters, a colon ("**Answer:** $(C)$");
# possessive (``*+``), so that a long run of them cannot make the search backtrack without end
_BETWEEN = r"(?:[\s*_$]|\\[(\[])*+[:=]?(?:[\s*_$]|\\[(\[])*+"
# phrases that state the final choice; the choice follows them
_STATED = re.compile(
    r"(?i:"
    r"\banswer\b(?:\s+(?:is|was|would be|should be|must be|will be))?"
    r"|\b(?:correct|right|best|final)\s+(?:option|choice|letter|one)(?:\s+(?:is|would be|must be))?"
    r"|\b(?:option|choice)\s+(?:is|would be|must be)"
    r"|\b(?:go(?:ing)?|went|stick(?:ing)?)\s+with"
    r"|\b(?:i|we)(?:'ll|’ll| will| would|'d|’d)?\s+(?:choose|chose|pick|select|opt for|settle on)"
    r")" + _BETWEEN + _CHOICE
)
# a conclusion: "..., so B." / "Hence (c)"; the letter must end the clause ("so A is wrong" is not one)
_CONCLUDED = re.compile(
    r"(?i:\b(?:so|thus|hence|therefore)\b,?(?:\s+(?:it's|it is|it must be))?)"
    + _BETWEEN
    + r"(?:\(([A-Da-d])\)|\b([A-Da-d]))(?=\s*(?:[.,;:!?)\]}*_$\\]|$))"
)
# the choice before a phrase that confirms it: "(B) is correct", "D is the right answer"
_CONFIRMED = re.compile(
    r"(?:\(([A-Da-d])\)|\b([A-D]))\s+(?:is|must be|would be)\s+(?:the\s+)?(?:correct|right|best)\b",
)
_PAREN = re.compile(r"\(([A-D])\)")
_ALONE = re.compile(r"[(\[]?([A-Da-d])[)\].:]?")


def shuffled_options(problem: Problem, seed: int) -> list[str]:
    """The four option texts in their order for (problem id, seed).

    Before shuffling, index 0 is the correct one.
    """
    options = list(problem.data["options"])
    digest = hashlib.sha256(f"gpqa:{problem.id}:{seed}".encode()).digest()
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(options)
    return options


def _letter(match: re.Match[str]) -> str:
    """The choice a match of `_STATED` / `_CONFIRMED` found, as a capital letter."""
    return next(g for g in match.groups() if g).upper()


def _stated(output: str) -> list[tuple[int, str]]:
    """(position, letter) of every statement of a choice: boxed, after a phrase, or confirmed."""
    text = strip_wrappers(output, boxes=False)  # \text{(B)}, \textbf{C}: the letter inside counts
    found = [(m.end(), _letter(m)) for pattern in (_STATED, _CONCLUDED, _CONFIRMED) for m in pattern.finditer(text)]
    for end, content in boxed_contents(text):
        words = unwrap(content).split(maxsplit=1)
        alone = _ALONE.fullmatch(words[0]) if words else None  # "\boxed{B}", "\boxed{(b) 4 times}"
        if alone:
            found.append((end, alone.group(1).upper()))
    return found


def extract_letter(output: str, options: dict[str, str] | None = None) -> str:
    """The option letter the output settles on ("" when none can be read).

    Order of evidence: the last statement of a choice in any letter case (``\\boxed{C}``,
    ``Answer: (b)``, "the correct option is C", "I'll go with D", "not A ... so B"), a reply that
    is only a letter, the last parenthesised capital letter, and finally the text of exactly one
    option quoted in the last lines. A letter that is only mentioned ("A is wrong") is not a choice.
    """
    stated = _stated(output)
    if stated:
        return max(stated, key=lambda c: c[0])[1]
    alone = _ALONE.fullmatch(unwrap(output))
    if alone:
        return alone.group(1).upper()
    parens: list[str] = _PAREN.findall(output[-300:])  # one group: findall yields its text
    if parens:
        return parens[-1]
    if options:
        tail = _norm(output[-600:])
        quoted = [
            letter
            for letter, text in options.items()
            if _norm(text) and re.search(rf"(?<!\w){re.escape(_norm(text))}(?!\w)", tail)
        ]
        if len(quoted) == 1:
            return quoted[0]
    return ""


def _norm(text: str) -> str:
    return " ".join(text.split()).lower().rstrip(".")


class GpqaTask(Task):
    kind: ClassVar[str] = "gpqa"
    answer_format: ClassVar[str] = "the letter of one option (A, B, C or D), on a last line of the form 'Answer: X'"
    answer_max_tokens: ClassVar[int] = 256

    def load(self, path: Path, limit: int | None = None) -> list[Problem]:
        rows = read_csv(path) if Path(path).suffix.lower() == ".csv" else read_jsonl(path)
        problems: list[Problem] = []
        seen: set[str] = set()
        for line, row in rows:
            problem = self._problem(row, path, line)
            if problem.id in seen:
                raise DatasetError(str(path), line, f"duplicate Record ID {problem.id!r}")
            seen.add(problem.id)
            problems.append(problem)
        return take(problems, limit)

    def _problem(self, row: dict[str, Any], path: Path, line: int) -> Problem:
        require(row, ("Question", *_OPTION_FIELDS), path, line)
        options = [" ".join(str(row[f]).split()) for f in _OPTION_FIELDS]
        if len(set(options)) < 4:
            raise DatasetError(str(path), line, "two options have the same text: the letters would be ambiguous")
        pid = str(row.get("Record ID") or f"row-{line}")
        data = {k: v for k, v in row.items() if k in ("Record ID", "Subdomain", "High-level domain", "Correct Answer")}
        data["options"] = options
        return Problem(
            id=pid,
            task=self.kind,
            statement=str(row["Question"]).strip(),
            gold=options[0],
            data=data,
        )

    def render(self, problem: Problem, seed: int) -> Rendered:
        options = shuffled_options(problem, seed)
        lines = [f"({letter}) {text}" for letter, text in zip(LETTERS, options, strict=True)]
        gold = LETTERS[options.index(problem.gold)]
        return Rendered(problem=problem, question=problem.statement + "\n\n" + "\n".join(lines), gold=gold)

    def grade(self, output: str, rendered: Rendered) -> Grade:
        options = dict(zip(LETTERS, shuffled_options_from(rendered), strict=True))
        letter = extract_letter(output, options)
        return Grade(answer=letter, score=1.0 if letter and letter == rendered.gold else 0.0)


def shuffled_options_from(rendered: Rendered) -> list[str]:
    """The option texts in the order a rendering shows them (read back from its question text)."""
    found = re.findall(r"^\(([A-D])\) (.*)$", rendered.question[len(rendered.problem.statement) :], re.MULTILINE)
    return [text for _, text in found[-4:]] if len(found) >= 4 else ["", "", "", ""]
