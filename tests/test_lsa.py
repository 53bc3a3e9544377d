"""Linear self-attention (von Oswald et al. 2022): the GD construction and a short training run."""

import pytest
import torch

from iclab.analysis import query_sensitivity, sensitivity_cosine
from iclab.config import apply_overrides, load_config, run_config_from_dict, to_dict
from iclab.errors import ConfigError
from iclab.learners import make_learner
from iclab.models import ICLModel, gd_construction
from iclab.models.encoders import Stacked
from iclab.recipes import von_oswald2022_lsa
from iclab.tasks import make_task
from iclab.types import Prompts


def test_construction_is_one_gd_step_at_every_prefix():
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(5, 9, 4, generator=g, dtype=torch.float64), torch.randn(5, 9, generator=g, dtype=torch.float64)
    cfg = load_config(
        None, ["model.name=linear_self_attention", "model.encoder=stacked", "task.n_dims=4", "task.n_points=9"]
    )
    model = ICLModel(cfg.model, 4).double()
    model.backbone = gd_construction(4, 0.7).double()
    gd = make_learner("gd(steps=1, lr=0.7)").predict(Prompts(xs, ys))
    torch.testing.assert_close(model(xs, ys), gd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layers", [2, 4])
def test_k_constructed_layers_are_k_gd_steps(layers):
    from iclab.models.lsa import prefix_predictions

    g = torch.Generator().manual_seed(2)
    xs, ys = torch.randn(6, 8, 3, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    net = gd_construction(3, [0.3, 0.5, 0.2, 0.4][:layers], n_layer=layers).double()
    ours = prefix_predictions(net, xs, ys)
    w = torch.zeros(6, 8, 3, dtype=torch.float64)  # K GD steps on every prefix, step sizes per step
    for i in range(1, 8):
        for eta in [0.3, 0.5, 0.2, 0.4][:layers]:
            w[:, i] -= (
                eta
                * torch.einsum("bn,bnd->bd", torch.einsum("bnd,bd->bn", xs[:, :i], w[:, i]) - ys[:, :i], xs[:, :i])
                / i
            )
    torch.testing.assert_close(ours, (w * xs).sum(-1), rtol=1e-5, atol=1e-7)
    # in the model's own causal stream a context token sees only earlier tokens: not K GD steps
    tokens, layout = Stacked.encode(xs, ys)
    assert not torch.allclose(net(tokens, layout)[:, layout.readout], ours)


def test_step_size_scan_and_learned_step_size_reach_the_closed_form():
    from iclab.analysis.step_size import gd_lr_scan, gd_query_error, learn_gd_lrs

    g = torch.Generator().manual_seed(3)
    xs = torch.rand(4000, 11, 5, generator=g, dtype=torch.float64) - 0.5
    ys = torch.einsum("bnd,bd->bn", xs, torch.randn(4000, 5, generator=g, dtype=torch.float64))
    # one step from 0: y_hat = eta * a with a = x_q . mean_j y_j x_j, so the best eta is E[a y] / E[a^2]
    a = torch.einsum("bd,bd->b", xs[:, -1], torch.einsum("bn,bnd->bd", ys[:, :-1], xs[:, :-1]) / 10)
    best = ((a * ys[:, -1]).mean() / (a * a).mean()).item()
    scan = gd_lr_scan(xs, ys, [x / 4 for x in range(1, 81)])
    assert min(scan, key=lambda t: t[1])[0] == pytest.approx(best, abs=0.13)
    (learned,) = learn_gd_lrs(xs, ys, steps=1, iters=400, lr0=1.0)
    assert learned == pytest.approx(best, rel=1e-3)
    two = learn_gd_lrs(xs, ys, steps=2, iters=400, lr0=1.0)  # two learned steps beat one

    def err(lrs):
        return gd_query_error(xs, ys, torch.tensor(lrs, dtype=torch.float64), 10).item()

    assert err(two) < err([learned]) - 1e-3


def test_sensitivity_of_gd_is_its_weight():
    g = torch.Generator().manual_seed(1)
    p = Prompts(
        torch.randn(3, 6, 2, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)
    )
    sens = query_sensitivity(make_learner("gd(steps=1, lr=0.5)")._predict, p)
    w = make_learner("gd(steps=1, lr=0.5)").weights(p.xs, p.ys)[:, -1]  # y_hat = w . x_q, so d y_hat / d x_q = w
    torch.testing.assert_close(sens, w)
    assert sensitivity_cosine(sens, w) == pytest.approx(1.0)


def test_lsa_rejects_the_interleaved_encoder():
    with pytest.raises(ConfigError, match="model.encoder: linear_self_attention takes the stacked encoder"):
        load_config(None, ["model.name=linear_self_attention", "model.encoder=interleaved"])


@pytest.mark.slow
def test_trained_layer_matches_one_gd_step(tmp_path):
    """Short version of benchmarks/von_oswald.py (5000 steps there; figures in docs/benchmarks.md).

    Initialised at std 0.3: at 0.1, two of five seeds sat on the plateau of the zero predictor (loss 0.39) after
    800 steps: the run sits near that saddle, so the last bits of its first steps decide the outcome, and the test
    failed in one full-suite run and passed alone. At 0.3 six seeds out of six reach 0.201-0.206."""
    from iclab.rundir import load_model
    from iclab.training.loop import train

    cfg = run_config_from_dict(
        apply_overrides(
            to_dict(von_oswald2022_lsa(800)),
            [
                "model.init_std=0.3",
                "train.device=cpu",
                "train.threads=1",
                "train.batch_size=512",
                "train.lr=3e-3",
                "train.eval_every=0",
                "eval.after_train=false",
            ],
        )
    )
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


@pytest.mark.parametrize(
    "options",
    [
        ["model.mlp=true"],
        ["model.layernorm=true"],
        ["model.mlp=true", "model.layernorm=true", "model.share_weights=true"],
    ],
)
def test_lsa_options_build_causal_models_with_their_hooks(options):
    from iclab.models import build_model, hook_points

    cfg = load_config(
        None,
        [
            "model.name=linear_self_attention",
            "model.encoder=stacked",
            "model.n_layer=2",
            "task.n_dims=3",
            "task.n_points=6",
            *options,
        ],
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    names = list(hook_points(model))
    assert ("blocks.1.hook_mlp_out" in names) == ("model.mlp=true" in options)
    if "model.share_weights=true" in options:
        assert model.backbone.blocks[0].attn is model.backbone.blocks[1].attn
    p = make_task(cfg.task).eval_prompts(4, seed=0)
    base = model.predict(p)
    ys = p.ys.clone()
    ys[:, 4:] += 5.0  # later labels cannot move earlier predictions
    torch.testing.assert_close(model(p.xs, ys).detach()[:, :5], base[:, :5])
    assert torch.isfinite(base).all() and not torch.allclose(base, torch.zeros_like(base))
