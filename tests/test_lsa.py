"""Linear self-attention (von Oswald et al. 2022): the GD construction and a short training run."""

import pytest
import torch

from iclab.analysis import query_sensitivity, sensitivity_cosine
from iclab.config import apply_overrides, load_config, run_config_from_dict, to_dict
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.models import ICLModel, gd_construction
from iclab.recipes import von_oswald2022_lsa
from iclab.tasks import make_task
from iclab.types import Prompts


def test_construction_is_one_gd_step_at_every_prefix():
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(5, 9, 4, generator=g, dtype=torch.float64), torch.randn(5, 9, generator=g, dtype=torch.float64)
    cfg = load_config(None, ["model.name=linear_self_attention", "model.encoder=stacked", "task.n_dims=4",
                             "task.n_points=9"])
    model = ICLModel(cfg.model, 4).double()
    model.backbone = gd_construction(4, 0.7).double()
    gd = make_learner("gd(steps=1, lr=0.7)").predict(Prompts(xs, ys))
    torch.testing.assert_close(model(xs, ys), gd, rtol=1e-5, atol=1e-6)


def test_sensitivity_of_gd_is_its_weight():
    g = torch.Generator().manual_seed(1)
    p = Prompts(torch.randn(3, 6, 2, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g,
                                                                                      dtype=torch.float64))
    sens = query_sensitivity(make_learner("gd(steps=1, lr=0.5)")._predict, p)
    w = make_learner("gd(steps=1, lr=0.5)").weights(p.xs, p.ys)[:, -1]  # y_hat = w . x_q, so d y_hat / d x_q = w
    torch.testing.assert_close(sens, w)
    assert sensitivity_cosine(sens, w) == pytest.approx(1.0)


def test_lsa_rejects_the_interleaved_encoder():
    with pytest.raises(ConfigError, match="model.encoder: linear_self_attention takes the stacked encoder"):
        load_config(None, ["model.name=linear_self_attention", "model.encoder=interleaved"])


@pytest.mark.slow
def test_trained_layer_matches_one_gd_step(tmp_path):
    """Short version of benchmarks/von_oswald.py (5000 steps there: 0.2021 vs 0.2018, cosine 0.9996)."""
    from iclab.run import load_model
    from iclab.train.loop import train

    cfg = run_config_from_dict(apply_overrides(to_dict(von_oswald2022_lsa(800)), ["model.init_std=0.1",
        "train.device=cpu", "train.threads=1", "train.batch_size=512", "train.lr=3e-3", "train.eval_every=0",
        "eval.after_train=false"]))
    train(cfg, tmp_path / "r", progress_bar=False)
    _, model, _ = load_model(tmp_path / "r")
    prompts = make_task(cfg.task).eval_prompts(4000, seed=3)
    with torch.no_grad():
        loss = 0.5 * ((model.predict(prompts)[:, -1] - prompts.ys[:, -1]) ** 2).mean().item()
    zero = 0.5 * (prompts.ys[:, -1] ** 2).mean().item()
    gd = make_learner("gd_lsa(lr=6.0)")
    gd_loss = 0.5 * ((gd.predict(prompts)[:, -1] - prompts.ys[:, -1]) ** 2).mean().item()
    cos = sensitivity_cosine(query_sensitivity(model, prompts), query_sensitivity(gd._predict, prompts))
    assert zero > 0.38 and gd_loss < 0.21
    assert loss < 0.23, loss
    assert cos > 0.97, cos
