"""Task families: distributions over prompts. ``TASKS`` maps a config's ``task.name`` to its class."""

from iclab.tasks.base import Curriculum, Task
from iclab.tasks.linear import LinearRegression, LinearRegressionConfig
from iclab.tasks.shifts import SHIFTS, apply_shift

TASKS: dict[str, type[Task]] = {
    "linear_regression": LinearRegression,
}


def make_task(config) -> Task:
    """Build the task a config section describes (``config.name`` selects the family)."""
    return TASKS[config.name](config)


__all__ = ["SHIFTS", "TASKS", "Curriculum", "LinearRegression", "LinearRegressionConfig", "Task",
           "apply_shift", "make_task"]
