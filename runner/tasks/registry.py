"""The task registry: a dataset kind names its loader and grader."""

from __future__ import annotations

from runner.tasks.aime import AimeTask
from runner.tasks.base import Task
from runner.tasks.calendar import CalendarTask
from runner.tasks.gpqa import GpqaTask
from runner.tasks.meeting import MeetingTask
from runner.tasks.trip import TripTask

_TASKS: dict[str, type[Task]] = {
    "aime": AimeTask,
    "gpqa": GpqaTask,
    "trip": TripTask,
    "calendar": CalendarTask,
    "meeting": MeetingTask,
}

TASK_KINDS: tuple[str, ...] = tuple(_TASKS)


def get_task(kind: str) -> Task:
    """The task for a dataset kind (aime, gpqa, trip, meeting, calendar).

    Raises:
        KeyError: the kind is unknown (the message lists the known ones).
    """
    try:
        return _TASKS[kind]()
    except KeyError:
        raise KeyError(f"unknown dataset kind {kind!r} (known: {', '.join(TASK_KINDS)})") from None
