"""Base: zero-shot chain of thought (paper.md §3.1)."""

from __future__ import annotations

from typing import ClassVar

from runner.tasks.methods.base import MethodStrategy


class CotMethod(MethodStrategy):
    """The test problem and an instruction to think step by step; no preface."""

    kind: ClassVar[str] = "cot"
    needs_synthesis: ClassVar[bool] = False
