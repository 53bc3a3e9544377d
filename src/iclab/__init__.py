"""iclab: in-context learning lab.

Train small sequence models on synthetic prompt distributions and compare them with the learning
algorithms they might implement::

    from iclab import load_config, train, evaluate_run, write_report
    cfg = load_config("configs/linear_regression.yaml", overrides=["train.steps=2000"])
    train(cfg, "runs/lr")
    evaluate_run("runs/lr")
    write_report("runs/lr")

The names below are imported on first use, so ``import iclab`` (and ``iclab --help``) stays fast.
"""

from iclab.lazy import exports

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "iclab.errors",
    "RunFolderError": "iclab.errors",
    "TrainingError": "iclab.errors",
    "UserError": "iclab.errors",
    "Learner": "iclab.types",
    "Prompts": "iclab.types",
    "RunConfig": "iclab.config",
    "load_config": "iclab.config",
    "save_config": "iclab.config",
    "TASKS": "iclab.tasks",
    "make_task": "iclab.tasks",
    "MODELS": "iclab.models",
    "build_model": "iclab.models",
    "capture": "iclab.models",
    "LEARNERS": "iclab.learners",
    "make_learner": "iclab.learners",
    "train": "iclab.training.loop",
    "evaluate_run": "iclab.evaluate",
    "error_curves": "iclab.evaluate",
    "write_report": "iclab.report",
    "load_model": "iclab.rundir",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__ = exports(_EXPORTS, globals(), __name__)
