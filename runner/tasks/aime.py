"""AIME: integer answers from 0 to 999, graded by integer comparison of the last stated final answer.

Records are JSON lines ``{"id", "problem", "answer"}`` (see data/PROVENANCE.md). The grader reads
what a model writes in practice: ``\\boxed{204}``, ``Answer: 204``, ``**Final answer:** 204``,
``the final answer is $\\boxed{033}$``, or just a number at the end. When a model states several
final answers (it changed its mind), the last one counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from runner.errors import DatasetError
from runner.tasks.base import Grade, Problem, Rendered, Task
from runner.tasks.files import read_jsonl, require, take

# explicit statements of a final answer; the value follows the match
# "answer" then only linking words and wrappers before the number: "answer from step 3" is not one
_MARKERS = re.compile(
    r"\banswer\b(?:\s+(?:is|was|would be|should be|of))?\s*(?:\*\*)?\s*[:=]?"
    r"(?:\*\*|\$|\\\(|\\\[|\s)*(?P<num>-?\d[\d,]*)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANY_INT = re.compile(r"-?\d+")


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """(end position, content) of every ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced."""
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found.append((i, text[m.end() : i - 1]))
    return found


def _as_int(raw: str) -> int | None:
    cleaned = raw.replace(",", "").replace("\\!", "").strip()
    if re.fullmatch(r"-?\d+", cleaned):
        return int(cleaned)
    if re.fullmatch(r"-?\d+\.0+", cleaned):
        return int(float(cleaned))
    return None


def extract_integer(output: str) -> str:
    """The last final answer stated in ``output``, as an integer string.

    "" when nothing is stated; the raw boxed text when it is not an integer.
    """
    candidates: list[tuple[int, str]] = []
    for end, content in boxed_contents(output):
        inner = content.replace("{,}", ",").replace("\\,", "")
        inner = re.sub(r"\\text\{[^}]*\}|\\mathrm\{[^}]*\}|\^\\circ|[\s$]", "", inner)
        value = _as_int(inner)
        if value is None:
            first = _ANY_INT.search(inner)
            # "\boxed{204 \text{ minutes}}" reads as 204; "\boxed{\frac{1}{2}}" stays unparsed
            candidates.append(
                (
                    end,
                    str(int(first.group())) if first and inner.startswith(first.group()) else inner,
                )
            )
        else:
            candidates.append((end, str(value)))
    for m in _MARKERS.finditer(output):
        value = _as_int(m.group("num"))
        if value is not None:
            candidates.append((m.end(), str(value)))
    if candidates:
        return max(candidates, key=lambda c: c[0])[1]
    tail = output[-200:]
    numbers = [n for n in _NUMBER.findall(tail) if _as_int(n) is not None]
    return str(_as_int(numbers[-1])) if numbers else ""


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
            if gold is None:
                raise DatasetError(str(path), line, f"field 'answer': expected an integer, got {row['answer']!r}")
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
        return Grade(answer=answer, score=1.0 if value is not None and value == gold else 0.0)
