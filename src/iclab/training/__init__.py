"""Training: loop (:func:`iclab.training.loop.train`), optimiser and schedule, checkpoints, logging.
The curriculum lives with the tasks (:class:`iclab.tasks.Curriculum`)."""

from iclab.training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from iclab.training.schedule import lr_at

__all__ = ["latest_checkpoint", "list_checkpoints", "load_checkpoint", "lr_at", "save_checkpoint"]
