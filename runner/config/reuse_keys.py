"""What makes two calls "the same", so that one already paid for can be reused (docs/reuse.md).

A **trace key** names a streamed trace by everything that decides its tokens, and nothing else:

- the provider kind and the manifest's ``base_url`` as written (a trailing ``/`` dropped; none:
  the kind's own endpoint, or for kind ``sim`` the simulator the run starts; ``sim://`` is the
  simulator, never the real host), and the provider's model id;
- every sampling setting the request carries: ``temperature``, ``reasoning_effort``, the
  sample's ``seed``, and the thinking budget where the protocol tells it to the model
  (`runner.config.kinds.THINKING_BUDGET_SENT`);
- the exact messages, role and text (a method's preface included, character for character);
- which text the trace is cut in (reasoning or content), the trace fidelity, and the tiktoken
  encoding its cuts are counted with (a cut is the first b tokens *of that encoding*).

The output cap is not part of it: a cap stops generation, it does not change the tokens before
it (where the model is told a budget, that budget is in the key). What a stored trace holds up to
its end is its **reach** (`runner.ledger.trace_store`), which decides the budgets it serves.

A **call key** names any other call (a forced answer, a hidden-reasoning budget, LEAP's
principles): the same identity with its output cap, and the trace key of the trace it answers,
so a forced answer is reused only for a cut of the same trace (the same sample).

Keys are ``t1:`` or ``c1:`` and 32 hex digits of a SHA-256 of the fields as canonical JSON; the
version changes whenever what a key covers changes, so keys of an older definition never match.
"""

from __future__ import annotations

import hashlib

import msgspec

from runner.config.calls import ModelPlan, traced_channel
from runner.config.kinds import sends_thinking_budget
from runner.types import ChatRequest

KEY_VERSION = 1


def trace_key(plan: ModelPlan, request: ChatRequest) -> str:
    """The key of a streamed trace request (see the module docstring)."""
    fields = _identity(plan, request)
    fields["traced"] = traced_channel(plan)
    fields["fidelity"] = plan.fidelity
    return f"t{KEY_VERSION}:{_digest(fields)}"


def call_key(plan: ModelPlan, request: ChatRequest, trace: str | None = None) -> str:
    """The key of a call whose whole output is kept (a forced answer of the trace ``trace``, a
    hidden-reasoning budget, a principles call): its identity with its output cap."""
    fields = _identity(plan, request)
    fields["cap"] = request.max_output_tokens
    fields["trace"] = trace
    return f"c{KEY_VERSION}:{_digest(fields)}"


def _identity(plan: ModelPlan, request: ChatRequest) -> dict[str, object]:
    url = plan.base_url or ""
    return {
        "kind": plan.provider_kind,
        # "sim://" stays apart from "" (a real host of the kind): a simulated trace serves only simulated runs
        "url": url.rstrip("/") if url.startswith(("http://", "https://")) else url,
        "model": request.model,
        "temperature": request.temperature,
        "effort": request.reasoning_effort,
        "seed": request.seed,
        "thinking": request.reasoning_budget if sends_thinking_budget(plan.provider_kind) else None,
        "messages": [[m.role, m.content] for m in request.messages],
        "encoding": plan.encoding.name,
    }


def _digest(fields: dict[str, object]) -> str:
    blob = msgspec.json.encode(fields, order="deterministic")
    return hashlib.sha256(blob).hexdigest()[:32]


__all__ = ["KEY_VERSION", "call_key", "trace_key"]
