"""Reading answers the way models write them: LaTeX and Markdown wrappers around a value.

Models put a final answer in ``\\boxed{...}``, ``$...$``, ``\\(...\\)``, ``\\text{...}``,
``**...**`` and the like. The graders find where an answer is stated; this module takes the
wrappers off so that the value inside is compared, and nothing else (a wrapper never hides a
right answer, and what remains after unwrapping is all there is: ``104\\sqrt{3}`` stays itself).
"""

from __future__ import annotations

import re

# commands whose argument is the value itself: \boxed{16}, \text{16}, \mathbf{16}
_WRAPPER = re.compile(r"\\(?:boxed|fbox|text|textbf|textrm|textit|mathrm|mathbf|mathit|mbox|bm)\s*\{")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# math delimiters and spacing commands that carry no value
_DELIMITERS = re.compile(r"\\\$|\$|\\\(|\\\)|\\\[|\\\]|\\displaystyle|\\left|\\right|\\[;: ]|~")
# thin spaces and negative spaces, as in 1\,000: nothing between the digits
_THIN = re.compile(r"\\[,!]")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?")
# what may stand around a value: Markdown emphasis and code, quotes, sentence punctuation
_EDGE = " \t\r\n*_`'\"“”‘’"
_TRAILING = ".;:!?,"
_PAIRS = ("()", "[]", "{}")


def _closing_brace(text: str, start: int) -> int | None:
    """The index just past the brace that closes the one opened before ``start`` (None: unbalanced)."""
    depth, i = 1, start
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
        if depth == 0:
            return i
    return None


def boxed_contents(text: str) -> list[tuple[int, str]]:
    """(end position, content) of every ``\\boxed{...}`` / ``\\fbox{...}``, braces balanced."""
    found: list[tuple[int, str]] = []
    for m in _BOXED.finditer(text):
        end = _closing_brace(text, m.end())
        if end is not None:
            found.append((end, text[m.end() : end - 1]))
    return found


def strip_wrappers(text: str) -> str:
    """``text`` without the LaTeX commands that only wrap a value, keeping what they wrap."""
    while (m := _WRAPPER.search(text)) is not None:
        end = _closing_brace(text, m.end())
        if end is None:  # an unclosed wrapper (a cut answer): drop the opener, keep the rest
            text = text[: m.start()] + text[m.end() :]
        else:
            text = text[: m.start()] + text[m.end() : end - 1] + text[end:]
    return text


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
