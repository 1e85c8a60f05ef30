"""Reading answers the way models write them: LaTeX and Markdown wrappers around a value.

Models put a final answer in ``\\boxed{...}``, ``$...$``, ``\\(...\\)``, ``\\text{...}``,
``**...**`` and the like. The graders find where an answer is stated; this module takes the
wrappers off so that the value inside is compared, and nothing else (a wrapper never hides a
right answer, and what remains after unwrapping is all there is: ``104\\sqrt{3}`` stays itself).
"""

from __future__ import annotations

import re

# commands whose argument is the value itself: \boxed{16}, \text{16}, \mathbf{16}
_TEXT_COMMANDS = r"text|textbf|textrm|textit|mathrm|mathbf|mathit|mbox|bm"
_WRAPPER = re.compile(rf"\\(?:boxed|fbox|{_TEXT_COMMANDS})\s*\{{")
_TEXT_WRAPPER = re.compile(rf"\\(?:{_TEXT_COMMANDS})\s*\{{")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
# the longest box that may hold an answer, in characters
LONGEST_ANSWER = 500
# math delimiters and spacing commands that carry no value
_DELIMITERS = re.compile(r"\\\$|\$|\\\(|\\\)|\\\[|\\\]|\\displaystyle|\\left|\\right|\\[;: ]|~")
# thin spaces and negative spaces, as in 1\,000: nothing between the digits
_THIN = re.compile(r"\\[,!]")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?")
# what may stand around a value: Markdown emphasis and code, quotes, sentence punctuation
_EDGE = " \t\r\n*_`'\"“”‘’"
_TRAILING = ".;:!?,"
_PAIRS = ("()", "[]", "{}")


def _closing_braces(text: str) -> dict[int, int]:
    """Where each ``{`` of ``text`` closes: its index -> the index of its ``}`` (unclosed: absent).

    One pass, so that a long output full of braces (a model repeating ``\\boxed{``) costs linear time.
    """
    open_at: list[int] = []
    pairs: dict[int, int] = {}
    for m in _BRACE.finditer(text):
        if m.group() == "{":
            open_at.append(m.start())
        elif open_at:
            pairs[open_at.pop()] = m.start()
    return pairs


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """(end position, content) of every ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced.

    A box holding more than `LONGEST_ANSWER` characters holds no answer (boxes nested a thousand
    deep, as a model in a loop may write, would otherwise cost quadratic time): it is left out.
    """
    openers = list(_BOXED.finditer(text))
    if not openers:
        return []
    pairs = _closing_braces(text)
    found: list[tuple[int, str]] = []
    for m in openers:
        close = pairs.get(m.end() - 1)
        if close is not None and close - m.end() <= LONGEST_ANSWER:
            found.append((close + 1, text[m.end() : close]))
    return found


def strip_wrappers(text: str, *, boxes: bool = True) -> str:
    """``text`` without the LaTeX commands that only wrap a value, keeping what they wrap.

    ``boxes`` False keeps ``\\boxed{}`` / ``\\fbox{}`` (and takes off only ``\\text{}`` and the
    like), so that boxes can still be found in the result. An unclosed wrapper (a cut answer) loses
    its opening command and keeps the rest.
    """
    openers = list((_WRAPPER if boxes else _TEXT_WRAPPER).finditer(text))
    if not openers:
        return text
    pairs = _closing_braces(text)
    cuts = sorted(
        [(m.start(), m.end()) for m in openers]
        + [(pairs[m.end() - 1], pairs[m.end() - 1] + 1) for m in openers if m.end() - 1 in pairs]
    )
    kept, at = [], 0
    for start, end in cuts:
        kept.append(text[at:start])
        at = end
    kept.append(text[at:])
    return "".join(kept)


def unwrap(text: str) -> str:
    """The value a model wrote, without wrappers, delimiters, emphasis or closing punctuation.

    ``$\\boxed{016}$.`` → ``016``; ``**16**`` → ``16``; ``\\text{(B)}`` → ``B``;
    ``60^\\circ`` → ``60``; ``104\\sqrt{3}`` stays ``104\\sqrt{3}``.
    """
    text = strip_wrappers(text)
    text = _THIN.sub("", text)
    text = _DELIMITERS.sub(" ", text)
    text = _DEGREES.sub("", text)
    text = text.replace("{,}", ",")
    previous = None
    while text != previous:
        previous = text
        text = text.strip(_EDGE).rstrip(_TRAILING).strip(_EDGE)
        if len(text) >= 2 and text[0] + text[-1] in _PAIRS and _balanced(text[1:-1]):
            text = text[1:-1]
    return " ".join(text.split())


def _balanced(text: str) -> bool:
    """Whether brackets of every kind open and close in order (``(1)(2)`` is not one wrapped pair)."""
    stack: list[str] = []
    closing = {")": "(", "]": "[", "}": "{"}
    for c in text:
        if c in "([{":
            stack.append(c)
        elif c in closing:
            if not stack or stack.pop() != closing[c]:
                return False
    return not stack
