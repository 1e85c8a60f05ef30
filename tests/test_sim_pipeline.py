"""The simulator against the project's own task loaders, graders and method prompts (in-repo data).

This is the neutrality and usefulness check in the small: whatever the task, the forced answer at
a budget is graded by the official rules, quality rises with the budget, the strong model beats
the weak one, and the forced answer on the whole trace grades like the whole trace itself.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from anytime_sim import SimConfig, open_simulator
from runner.tasks.methods import get_method
from runner.tasks.methods.base import answer_messages
from runner.tasks.registry import get_task
from runner.tokens.encodings import get_encoding

KEY_HEADER = {"Authorization": "Bearer test-key"}  # every vendor API wants a key (the simulator: any)

REPO = Path(__file__).resolve().parent.parent
ENC = get_encoding("o200k_base")
BUDGETS = (256, 1024, 4096)
SETS = {
    "aime": "data/aime_2024.jsonl",
    "gpqa": "data/gpqa_sample.jsonl",
    "trip": "data/natural_plan/trip_planning_24.jsonl",
    "calendar": "data/natural_plan/calendar_scheduling_24.jsonl",
    "meeting": "data/natural_plan/meeting_planning_24.jsonl",
}


def _available() -> list[tuple[str, Path]]:
    return [(kind, REPO / rel) for kind, rel in SETS.items() if (REPO / rel).is_file()]


@pytest.mark.skipif(not _available(), reason="the in-repo dataset slices are missing")
async def test_forced_answers_graded_by_the_official_rules_rise_with_budget() -> None:
    datasets = _available()
    curves: dict[str, list[float]] = {"sim-reasoner-large": [0.0] * 4, "sim-cot-small": [0.0] * 4}
    async with (
        open_simulator(SimConfig(time_scale=0), datasets) as sim,
        aiohttp.ClientSession(headers=KEY_HEADER) as session,
    ):

        async def call(model: str, messages, cap: int, seed: int) -> tuple[str, str]:
            body = {
                "model": model,
                "max_completion_tokens": cap,
                "seed": seed,
                "messages": [{"role": m.role, "content": m.content} for m in messages],
            }
            async with session.post(sim.base_url + "/v1/chat/completions", json=body) as r:
                message = (await r.json())["choices"][0]["message"]
            return message.get("reasoning_content") or "", message["content"] or ""

        for kind, path in datasets:
            task, method = get_task(kind), get_method("cot")
            for problem in task.load(path, 4):
                for seed in range(2):
                    rendered = task.render(problem, seed)
                    for model, curve in curves.items():
                        reasoning, content = await call(
                            model, method.trace_messages(task, rendered, None), 20_000, seed
                        )
                        tokens = ENC.encode(reasoning or content)
                        for k, budget in enumerate((*BUDGETS, len(tokens))):
                            cut = ENC.decode(tokens[:budget])
                            _, answer = await call(model, answer_messages(task, rendered, cut), 512, seed)
                            curve[k] += task.grade(answer, rendered).score
                        # the forced answer on the whole trace grades like the whole answer
                        assert task.grade(answer, rendered).score == task.grade(content, rendered).score, kind
    strong, weak = curves["sim-reasoner-large"], curves["sim-cot-small"]
    assert strong[0] < strong[1] <= strong[2] and weak[0] <= weak[2]
    assert strong[2] > weak[2] + 2 and sum(strong) > sum(weak)
