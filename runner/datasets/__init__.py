"""Datasets: a loader and a grader per task, behind the `Task` interface of `base.py`."""
