"""The task registry: a dataset kind names its loader and grader."""

from __future__ import annotations

from collections.abc import Callable

from runner.tasks.base import Task

_FACTORIES: dict[str, Callable[[], Task]] = {}


def _lazy(module: str, cls: str) -> Callable[[], Task]:
    def make() -> Task:
        from importlib import import_module

        return getattr(import_module(module), cls)()

    return make


_FACTORIES.update(
    {
        "aime": _lazy("runner.tasks.aime", "AimeTask"),
        "gpqa": _lazy("runner.tasks.gpqa", "GpqaTask"),
        "trip": _lazy("runner.tasks.trip", "TripTask"),
        "calendar": _lazy("runner.tasks.calendar", "CalendarTask"),
        "meeting": _lazy("runner.tasks.meeting", "MeetingTask"),
    }
)

TASK_KINDS: tuple[str, ...] = tuple(_FACTORIES)


def get_task(kind: str) -> Task:
    """The task for a dataset kind (aime, gpqa, trip, meeting, calendar).

    Raises:
        KeyError: the kind is unknown (the message lists the known ones).
    """
    try:
        return _FACTORIES[kind]()
    except KeyError:
        raise KeyError(f"unknown dataset kind {kind!r} (known: {', '.join(TASK_KINDS)})") from None
