"""AIME: integer answers from 0 to 999, graded by integer comparison of the last stated final answer.

Records are JSON lines ``{"id", "problem", "answer"}`` (see data/PROVENANCE.md). The grader reads
what a model writes in practice: ``\\boxed{204}``, ``Answer: 204``, ``**Final answer:** 204``,
``the final answer is $\\boxed{033}$``, or just a number at the end. When a model states several
final answers (it changed its mind), the last one counts.

An answer counts only when it is exactly an integer: the value a statement holds, with its
wrappers taken off (`runner.tasks.latex.unwrap`: ``\\text{16}``, ``$16$``, ``**16**``, ``016``),
must be digits (thousands separators and a ``.0`` allowed, a unit word after it too: ``204
minutes``). ``19.5`` is not 19 and ``104\\sqrt{3}`` is not 104: such answers are kept as written
and score 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from runner.errors import DatasetError
from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.files import read_jsonl, require, take
from runner.tasks.latex import boxed_contents, unwrap

# an explicit statement of the final answer: "answer" and only linking words before its value
# ("the answer from step 3 was 120" is not one: its value would start with a word)
_MARKER = re.compile(
    r"\banswer\b(?:\s+(?:is|was|would be|should be|will be|must be|equals|of))?\s*[*_]{0,2}\s*[:=]?",
    re.IGNORECASE,
)
# where the value after a marker ends: a line end, or a sentence end ("16. Then", "16, since")
_VALUE_END = re.compile(r"\n|[.;,!?](?=\s|$)|\s(?:because|since|which|as|so)\b", re.IGNORECASE)
# an integer, with a unit or a few words after it at most: "1,000", "016", "16.0", "204 minutes"
_INTEGER = re.compile(
    r"([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?"
    r"(?:\s+[A-Za-z][A-Za-z ]*|\s*\([A-Za-z ]*\)|\s*\(?\s*\\?(?:p?mod|bmod|modulo)\s*\{?\s*\d+\s*\}?\s*\)?)?"
)
# a number anywhere, for the fallback: the last one in the output's tail
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def integer_value(expression: str) -> int | None:
    """The integer an answer expression states, or None when it is not exactly an integer."""
    text = unwrap(expression)
    if "=" in text:  # "m + n = 116": the value is what it equals
        text = unwrap(text.rsplit("=", 1)[1])
    m = _INTEGER.fullmatch(text)
    if m is None:
        return None
    value = int(m.group(2).replace(",", ""))
    return -value if m.group(1) == "-" else value


def _statement(expression: str) -> str | None:
    """What a stated answer is graded as: the integer as digits, else the expression as written.

    None when the text after a marker is prose, not a value ("the answer is clear").
    """
    value = integer_value(expression)
    if value is not None:
        return str(value)
    text = unwrap(expression)
    if not text or text[0].isalpha() or not any(c.isdigit() or c == "\\" for c in text):
        return None
    return text


def _marked(output: str) -> list[tuple[int, str]]:
    """(position, answer) of every "answer ..." statement whose value is not prose."""
    found: list[tuple[int, str]] = []
    for m in _MARKER.finditer(output):
        rest = output[m.end() : m.end() + 300]
        if rest.lstrip(" \t*_$").startswith("\n"):
            continue  # "Final Answer\n": the value, if any, is boxed or on a later line
        stop = _VALUE_END.search(rest.lstrip())
        expression = rest.lstrip()[: stop.start()] if stop else rest.lstrip()
        answer = _statement(expression)
        if answer is not None:
            found.append((m.end(), answer))
    return found


def _last_number(output: str) -> str:
    """The fallback when nothing is stated: the last number in the output's tail, as written
    (a number inside an expression such as ``104\\sqrt{3}`` brings the whole expression)."""
    tail = output[-200:]
    numbers = list(_NUMBER.finditer(tail))
    if not numbers:
        return ""
    last = numbers[-1]
    start = max(tail.rfind(" ", 0, last.start()), tail.rfind("\n", 0, last.start())) + 1
    end = min((i for i in (tail.find(" ", last.end()), tail.find("\n", last.end())) if i != -1), default=len(tail))
    return _statement(tail[start:end]) or last.group().rstrip(",")


def extract_integer(output: str) -> str:
    """The last final answer stated in ``output``: an integer as digits, else what was written.

    "" when nothing is stated. A non-integer answer (``19.5``, ``104\\sqrt{3}``,
    ``\\frac{1}{2}``) is returned as written, so it is recorded and scores 0.
    """
    candidates = [(end, _statement(content) or unwrap(content)) for end, content in boxed_contents(output)]
    candidates += _marked(output)
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    return _last_number(output)


def _as_int(raw: str) -> int | None:
    """A dataset's gold answer as an integer (``"033"`` → 33), or None."""
    return integer_value(raw) if re.fullmatch(r"\s*[+-]?\d+(?:\.0+)?\s*", raw) else None


class AimeTask(Task):
    kind: ClassVar[str] = "aime"
    answer_format: ClassVar[str] = "an integer from 0 to 999, on a last line of the form 'Answer: N'"
    answer_max_tokens: ClassVar[int] = 256

    def load(self, path: Path, limit: int | None = None) -> list[Problem]:
        problems: list[Problem] = []
        seen: set[str] = set()
        for line, row in read_jsonl(path):
            require(row, ("problem",), path, line)
            require(row, ("id", "answer"), path, line, (str, int))
            gold = _as_int(str(row["answer"]))
            if gold is None or not 0 <= gold <= 999:
                raise DatasetError(
                    str(path), line, f"field 'answer': expected an integer from 0 to 999, got {row['answer']!r}"
                )
            pid = str(row["id"])
            if pid in seen:
                raise DatasetError(str(path), line, f"duplicate id {pid!r}")
            seen.add(pid)
            problems.append(Problem(id=pid, task=self.kind, statement=row["problem"].strip(), gold=str(gold)))
        return take(problems, limit)

    def grade(self, output: str, rendered: Rendered) -> Grade:
        answer = extract_integer(output)
        value = _as_int(answer) if answer else None
        gold = _as_int(rendered.gold)
        right = value is not None and 0 <= value <= 999 and value == gold
        return Grade(answer=answer, score=1.0 if right else 0.0)
