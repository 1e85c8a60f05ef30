"""Methods: prompt rules the simulator relies on, the held-out pool, and preference pairs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config.manifest import Method
from runner.tasks.methods import (
    REASONING_CLOSE,
    REASONING_OPEN,
    PoolTrace,
    answer_messages,
    get_method,
    preference_pairs,
    select_pool,
)
from runner.tasks.registry import get_task

DATA = Path(__file__).resolve().parent.parent / "data"


def _trace(pid: str, score: float, text: str = "", question: str = "") -> PoolTrace:
    return PoolTrace(
        problem_id=pid,
        rendered_question=question or f"Question {pid}?",
        trace_text=text or f"reasoning {pid} {score}",
        answer=str(score),
        score=score,
        gold="1",
    )


@pytest.fixture
def gpqa():
    task = get_task("gpqa")
    problems = task.load(DATA / "gpqa_sample.jsonl")
    return task, problems


@pytest.mark.parametrize("kind", ["cot", "pdp", "pdp_plus", "leap"])
def test_every_prompt_holds_the_question_verbatim_and_last(gpqa, kind: str) -> None:
    task, problems = gpqa
    method = get_method(kind, Method(kind=kind, m=2))
    pool = [_trace(p.id, s, question=task.render(p, 0).question) for p in problems[1:] for s in (0.0, 1.0)]
    preface = method.build_preface(task, pool)[1] if kind != "leap" else "- check the units"
    rendered = task.render(problems[0], 9)
    (message,) = method.trace_messages(task, rendered, preface)
    text = message.content
    assert rendered.question in text
    # in-context examples of other problems come before the test problem
    assert all(text.rfind(p.statement) < text.rfind(problems[0].statement) for p in problems[1:])
    assert task.answer_format in text


def test_answer_prompt_is_shared_and_marked(gpqa) -> None:
    task, problems = gpqa
    rendered = task.render(problems[0], 1)
    (message,) = answer_messages(task, rendered, "so far I think the energy scales as 1/L^2")
    text = message.content
    assert rendered.question in text
    start, end = text.index(REASONING_OPEN), text.index(REASONING_CLOSE)
    assert text.index(rendered.question) < start < end
    assert "so far I think the energy scales as 1/L^2" in text[start:end]
    assert "Stop reasoning now" in text[end:] and task.answer_format in text[end:]


def test_cot_has_no_synthesis_and_no_preface(gpqa) -> None:
    task, problems = gpqa
    method = get_method("cot", Method(kind="cot"))
    assert not method.needs_synthesis
    (message,) = method.trace_messages(task, task.render(problems[0], 0), None)
    assert message.content.startswith("Solve the following problem")


def test_select_pool_is_deterministic_and_disjoint() -> None:
    problems = get_task("aime").load(DATA / "aime_2024.jsonl")
    evaluated = {p.id for p in problems[:20]}
    pool = select_pool(problems, evaluated, 6, seed=3)
    assert len(pool) == 6 and not {p.id for p in pool} & evaluated
    assert pool == select_pool(problems, evaluated, 6, seed=3)
    assert [p.id for p in pool] == [p.id for p in problems if p in pool]  # file order
    assert {p.id for p in select_pool(problems, evaluated, 6, seed=4)} != {p.id for p in pool}
    assert len(select_pool(problems, evaluated, 50, seed=3)) == 10
    assert select_pool(problems, {p.id for p in problems}, 6, seed=3) == []


def test_pairs_take_best_and_worst_skip_ties_and_keep_m() -> None:
    pool = [
        _trace("a", 0.0),
        _trace("a", 1.0),
        _trace("a", 0.5),
        _trace("b", 1.0),
        _trace("b", 1.0),  # a tie: nothing to contrast
        _trace("c", 0.25),
        _trace("c", 0.5),
        _trace("d", 0.0),
        _trace("d", 1.0),
    ]
    pairs = preference_pairs(pool, m=2)
    assert [(w.problem_id, w.score, lo.score) for w, lo in pairs] == [("a", 1.0, 0.0), ("d", 1.0, 0.0)]
    assert [w.problem_id for w, _ in preference_pairs(pool, m=10)] == ["a", "c", "d"]


def test_pdp_shows_winner_and_loser_pdp_plus_winners_only(gpqa) -> None:
    task, _ = gpqa
    pool = [_trace("a", 1.0, "WINNING STEPS"), _trace("a", 0.0, "LOSING STEPS")]
    examples, text = get_method("pdp", Method(kind="pdp")).build_preface(task, pool)
    assert "PREFERRED" in text and "DISPREFERRED" in text
    assert text.index("WINNING STEPS") < text.index("LOSING STEPS")
    assert examples[0]["problem_id"] == "a" and "loser" in examples[0]
    examples, text = get_method("pdp_plus", Method(kind="pdp_plus")).build_preface(task, pool)
    assert "WINNING STEPS" in text and "LOSING STEPS" not in text and "loser" not in examples[0]


def test_pdp_with_only_ties_gives_an_empty_preface(gpqa) -> None:
    task, _ = gpqa
    assert get_method("pdp", Method(kind="pdp")).build_preface(task, [_trace("a", 1.0), _trace("a", 1.0)]) == ([], "")


def test_leap_principles_prompt_shows_mistakes_with_gold(gpqa) -> None:
    task, _ = gpqa
    method = get_method("leap", Method(kind="leap"))
    assert method.needs_synthesis
    (message,) = method.principle_messages(task, [_trace("a", 0.0, "I misread the sign")])
    assert "I misread the sign" in message.content and "Correct answer: 1" in message.content
    assert "principles" in message.content


def test_unknown_kind_and_bad_parameters() -> None:
    with pytest.raises(KeyError, match="unknown method kind"):
        get_method("tot", None)
    with pytest.raises(ValueError, match="`k` must be at least 2"):
        get_method("pdp", Method(kind="pdp", k=1))
