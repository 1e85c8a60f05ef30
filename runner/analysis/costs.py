"""Dollars per budget: what one trace costs when it is answered at budget b, for quality-vs-dollars plots.

Operating at budget b alone means paying for the trace's prompt, its output up to b tokens, and one
forced answer at b. From the ledger, per completed job of a cell (mean over jobs):

- the trace's prompt: every trace attempt's dollars less its output's; its output scaled by
  ``min(1, b / output tokens)`` (a trace streamed once to the last budget paid for all of it);
- the forced answer at b: its call's dollars (retries included); a budget whose answer was reused
  from an earlier identical cut costs that earlier answer's call;
- hidden reasoning: the budget's own call.

The split of an attempt's dollars into prompt and output uses the run header's prices for the
model (output share = output tokens x output price over the priced total); without prices it is
split by tokens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from runner.ledger.records import Attempt


def usd_at_budgets(
    attempts: Sequence[Attempt], budgets: Sequence[int], prices: Mapping[str, Mapping[str, object]]
) -> tuple[float, ...]:
    """Mean dollars per job to answer at each budget (see the module docstring).

    ``attempts`` are a cell's evaluation attempts (trace and answer calls of its completed jobs);
    ``prices`` the run header's ``{model: {"input": …, "output": …}}``.
    """
    by_job: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_job[attempt.job_id].append(attempt)
    if not by_job:
        return tuple(0.0 for _ in budgets)
    totals = [0.0] * len(budgets)
    for job_attempts in by_job.values():
        for t, cost in enumerate(_job_costs(job_attempts, budgets, prices)):
            totals[t] += cost
    return tuple(total / len(by_job) for total in totals)


def _job_costs(
    attempts: list[Attempt], budgets: Sequence[int], prices: Mapping[str, Mapping[str, object]]
) -> list[float]:
    traces = [a for a in attempts if a.kind == "trace"]
    answers: dict[int, float] = defaultdict(float)
    for a in attempts:
        if a.kind == "answer" and a.budget is not None:
            answers[a.budget] += a.usd
    prompt = output = 0.0
    output_tokens = max((a.billed_output for a in traces), default=0)
    for a in traces:
        share = _output_share(a, prices.get(a.model, {}))
        output += a.usd * share
        prompt += a.usd * (1.0 - share)
    costs = []
    answer = 0.0
    for budget in budgets:
        answer = answers.get(budget, answer)  # a reused answer costs the earlier call's
        scaled = output * min(1.0, budget / output_tokens) if output_tokens else 0.0
        costs.append(prompt + scaled + answer)
    return costs


def _output_share(attempt: Attempt, price: Mapping[str, object]) -> float:
    p_in, p_out = price.get("input"), price.get("output")
    rate_in = float(p_in) if isinstance(p_in, int | float) else 1.0
    rate_out = float(p_out) if isinstance(p_out, int | float) else 1.0
    priced_in, priced_out = attempt.billed_input * rate_in, attempt.billed_output * rate_out
    total = priced_in + priced_out
    return priced_out / total if total > 0 else 0.0


__all__ = ["usd_at_budgets"]
