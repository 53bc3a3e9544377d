"""The generic task wrappers: label noise (`noisy`) and input / output scaling (`scaled`) over any regression task."""

import pytest
import torch

from conftest import assert_train_refuses
from iclab.config import load_config
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.tasks import make_task


def _task(name, *overrides):
    return make_task(load_config(None, [f"task.name={name}", *overrides]).task)


def test_noisy_adds_gaussian_noise_to_the_wrapped_labels():
    task = _task("noisy", "task.noise_std=0.7", "task.base={name: monomial_regression}", "task.n_points=9")
    p = task.eval_prompts(4000, seed=0)
    noise = (p.ys - task.label(p.xs, p.info)).flatten().numpy()
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.7) < 0.01
    clean = task.base.error_scale
    assert task.error_scale == clean and task.relevant_learners()[0] == "feature_ridge(lam=0.49)"


@pytest.mark.parametrize(
    "base, combined",
    [
        ("{name: linear_regression, noise_std: 0.3}", "ridge(lam=0.34)"),  # 0.3^2 + 0.5^2 (0.34)
        ("{name: sparse_linear_regression, sparsity: 2}", None),
    ],
)
def test_noisy_posterior_folds_both_noises_into_the_wrapped_prior(base, combined):
    task = _task("noisy", "task.noise_std=0.5", f"task.base={base}", "task.n_dims=4", "task.n_points=8")
    p = task.eval_prompts(50, seed=1)
    ours = make_learner("posterior_mean", task=task).predict(p)
    if combined:
        torch.testing.assert_close(ours, make_learner(combined).predict(p), rtol=1e-4, atol=1e-5)
    else:
        reference = _task("sparse_linear_regression", "task.sparsity=2", "task.noise_std=0.5", "task.n_dims=4")
        torch.testing.assert_close(ours, reference.posterior(p.xs, p.ys)[0])


def test_noisy_keeps_the_wrapped_tasks_scoring():
    task = _task("noisy", "task.base={name: vector_retrieval}", "task.noise_std=0.1")
    p = task.eval_prompts(8, seed=0)
    assert bool(task.error(p.ys, p.ys)[:, :-1].isnan().all()) and task.error_label.endswith("(at the query)")


def test_scaled_inputs_keep_the_function_and_outputs_scale():
    task = _task("scaled", "task.x_scale=3", "task.y_scale=0.5", "task.n_dims=4", "task.n_points=6")
    p = task.eval_prompts(3000, seed=2)
    assert abs(float(p.xs.std()) - 3) < 0.05
    w = p.info["w"]
    torch.testing.assert_close(p.ys, 0.5 * torch.einsum("bnd,bd->bn", p.xs, w))
    assert task.error_scale == pytest.approx(0.25 * 9 * 4, rel=0.05)  # E[y^2] = y_scale^2 x_scale^2 d
    assert task.error_label == "squared error / E[y^2]"
    ls = task.error(make_learner("least_squares").predict(p), p.ys).mean(0)
    assert float(ls[-1]) < 1e-8 and float(ls[0]) == pytest.approx(1.0, abs=0.1)


def test_output_scaling_alone_is_the_references_wrapper_and_needs_no_relabelling():
    base = _task("linear_regression", "task.n_dims=3")
    task = _task("scaled", "task.x_scale=1", "task.y_scale=4", "task.n_dims=3")
    a, b = base.eval_prompts(5, seed=3), task.eval_prompts(5, seed=3)
    torch.testing.assert_close(b.xs, a.xs)
    torch.testing.assert_close(b.ys, 4 * a.ys)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["task.name=noisy", "task.noise_std=-1"], "task.noise_std: must be zero or positive, got -1.0"),
        (
            ["task.name=noisy", "task.base={name: rasp}"],
            "task.base.name: noisy wraps a real-valued regression task; rasp has token prompts",
        ),
        (["task.name=scaled", "task.base={name: linear_classification}"], "linear_classification has class labels"),
        (["task.name=noisy", "task.base={name: noisy}"], "task.base.name: noisy wraps a single task family, not noisy"),
        (
            ["task.name=noisy", "task.base={name: linear_regression, n_dims: 3}"],
            "task.base.n_dims: must equal task.n_dims (5)",
        ),
        (["task.name=scaled", "task.x_scale=0"], "task.x_scale: must be positive"),
        (["task.name=noisy", "task.base={name: linear_regression, noise: 1}"], "task.base.noise: unknown field"),
    ],
)
def test_bad_wrappers_are_refused_in_one_line(overrides, message, capsys, tmp_path):
    with pytest.raises(ConfigError):
        load_config(None, overrides)
    assert_train_refuses(overrides, message, capsys, tmp_path / "r")


def test_a_wrapped_task_trains(tmp_path):
    from iclab.training.loop import train

    cfg = load_config(
        None,
        ["task.name=noisy", "task.base={name: sparse_linear_regression, sparsity: 2}", "model.n_layer=1"]
        + ["model.n_embd=16", "model.n_head=2", "train.steps=4", "train.batch_size=8", "train.eval_every=0"]
        + ["train.warmup_steps=1", "train.device=cpu"],
    )
    assert train(cfg, tmp_path / "run", progress_bar=False).status == "finished"


def test_input_scaling_needs_a_task_that_relabels_moved_inputs():
    """A regression task without a label function can have its outputs scaled, not its inputs."""
    from dataclasses import dataclass, field

    from iclab.tasks import TASKS, Curriculum, Task

    @dataclass
    class NoLabelConfig:
        name: str = "no_label_probe"
        n_dims: int = 5
        n_points: int = 11
        curriculum: Curriculum = field(default_factory=Curriculum)

        def validate(self, path: str = "task") -> None:
            pass

    class NoLabel(Task):
        Config = NoLabelConfig

    TASKS.register(NoLabel)
    try:
        with pytest.raises(ConfigError, match="task.x_scale: no_label_probe cannot label moved inputs"):
            load_config(None, ["task.name=scaled", "task.base={name: no_label_probe}"])
        assert load_config(None, ["task.name=scaled", "task.base={name: no_label_probe}", "task.x_scale=1"])
    finally:
        TASKS.unregister("no_label_probe")
