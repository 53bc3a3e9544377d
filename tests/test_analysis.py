"""Analysis instruments on constructed cases with known answers, and `iclab analyze` end to end."""

import json

import numpy as np
import pytest
import torch

from conftest import real_families, tiny_model
from iclab.analysis import (
    alignment_table,
    fit_probe,
    implicit_weights,
    lsa_products,
    probe_target,
    query_inputs,
    run_with_cache,
    weight_recovery,
)
from iclab.cli import main
from iclab.config import load_config
from iclab.errors import UserError
from iclab.learners import make_learner
from iclab.models import ICLModel, build_model, gd_construction, hook_points
from iclab.tasks import make_task
from iclab.types import Prompts


def _task(*overrides):
    return make_task(load_config(None, list(overrides)).task)


def _gd_model(d, eta):
    cfg = load_config(None, ["model.name=linear_self_attention", "model.encoder=stacked", f"task.n_dims={d}"])
    model = ICLModel(cfg.model, d).double()
    model.backbone = gd_construction(d, eta).double()
    return model


def _f64(p):
    return Prompts(p.xs.double(), p.ys.double(), p.info)


def test_gd_constructed_lsa_aligns_with_gd_exactly():
    task = _task("task.n_dims=4", "task.n_points=9")
    prompts = _f64(task.eval_prompts(64, seed=0))
    rows = alignment_table(_gd_model(4, 0.7), task, prompts, ["gd(steps=1, lr=0.7)", "least_squares"], ks=[2, 4, 8])
    gd = [r for r in rows if r["learner"].startswith("gd")]
    assert all(r["spd"] < 1e-12 and r["ilwd"] < 1e-10 for r in gd)
    assert all(r["sensitivity_cosine"] > 1 - 1e-6 and r["sensitivity_l2"] < 1e-8 for r in gd)
    ls = [r for r in rows if r["learner"] == "least_squares"]
    assert all(r["spd"] > 1e-3 for r in ls)  # and it is not least squares


def test_implicit_weights_of_linear_learners_are_their_weights():
    task = _task("task.n_dims=5", "task.n_points=12", "task.noise_std=0.3")
    prompts = _f64(task.eval_prompts(20, seed=1))
    queries = query_inputs(task, 20, 11).double()
    for spec, k in (("ridge(lam=0.5)", 3), ("ridge(lam=0.5)", 9), ("least_squares", 8)):
        learner = make_learner(spec)
        w_hat, r2 = implicit_weights(learner, prompts, k, queries)
        torch.testing.assert_close(w_hat, learner.weights(prompts.xs, prompts.ys)[:, k])
        assert r2.min() > 1 - 1e-9
    # Panwar et al.'s weight recovery: least squares recovers the noiseless w exactly once k >= d
    clean = _task("task.n_dims=5", "task.n_points=12")
    p = _f64(clean.eval_prompts(20, seed=2))
    exact = weight_recovery(make_learner("least_squares"), p, 6, queries, scale=5.0)
    assert exact["cosine_vs_true"] > 1 - 1e-9 and exact["error_vs_true"] < 1e-12
    early = weight_recovery(make_learner("least_squares"), p, 2, queries, scale=5.0)
    assert early["cosine_vs_true"] < 0.9


@pytest.mark.slow
def test_probe_decodes_a_planted_quantity_and_fails_on_noise():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(3000, 24, generator=g)
    planted = acts[:, :6] @ torch.randn(6, 3, generator=g)  # linear in the activations
    noise = torch.randn(3000, 3, generator=g)  # unrelated
    bent = torch.relu(acts[:, :2]) * acts[:, 2:4]  # nonlinear
    for kind in ("linear", "mlp"):
        assert fit_probe(acts[:2000], planted[:2000], acts[2000:], planted[2000:], kind=kind)["r2_test"] > 0.97
        assert fit_probe(acts[:2000], noise[:2000], acts[2000:], noise[2000:], kind=kind)["r2_test"] < 0.05
    linear = fit_probe(acts[:2000], bent[:2000], acts[2000:], bent[2000:], kind="linear")["r2_test"]
    mlp = fit_probe(acts[:2000], bent[:2000], acts[2000:], bent[2000:], kind="mlp", steps=600)["r2_test"]
    assert mlp > linear + 0.3


def test_probe_targets_match_numpy_and_reject_what_does_not_apply():
    task = _task("task.n_dims=3", "task.n_points=7")
    p = task.eval_prompts(4, seed=0)
    w_ols = probe_target(task, p, "w_ols").numpy()
    xty = probe_target(task, p, "xty").numpy()
    xs, ys = p.xs.double().numpy(), p.ys.double().numpy()
    for b in range(4):
        for i in range(1, 7):
            np.testing.assert_allclose(w_ols[b, i], np.linalg.lstsq(xs[b, :i], ys[b, :i], rcond=None)[0], atol=1e-6)
            np.testing.assert_allclose(xty[b, i], xs[b, :i].T @ ys[b, :i], atol=1e-9)
    torch.testing.assert_close(probe_target(task, p, "w")[:, 3], p.info["w"].double())
    with pytest.raises(UserError, match="probe target 'phi' does not apply to task 'linear_regression'"):
        probe_target(task, p, "phi")
    with pytest.raises(UserError, match="probe target 'w_ols' does not apply to task 'digits_classification'"):
        digits = _task("task.name=digits_classification")
        probe_target(digits, digits.eval_prompts(2, seed=0), "w_ols")
    with pytest.raises(UserError, match="probe target 'beta' is unknown"):
        probe_target(task, p, "beta")


def test_activation_cache_by_name_readout_and_stack():
    cfg = load_config(
        None, ["model.n_layer=2", "model.n_embd=16", "model.n_head=2", "task.n_dims=3", "task.n_points=6"]
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    p = make_task(cfg.task).eval_prompts(5, seed=0)
    pred, cache = run_with_cache(model, p, ["blocks.*.hook_resid_post", "hook_final"])
    assert set(cache) == {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "hook_final"}
    names, stacked = cache.stack("blocks.*.hook_resid_post")
    assert names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"] and stacked.shape == (2, 5, 11, 16)
    readout = cache.at_readout("hook_final")  # interleaved: the x-tokens 0, 2, 4, ...
    torch.testing.assert_close(readout, cache["hook_final"][:, ::2])
    torch.testing.assert_close(model.backbone.read_out(readout).squeeze(-1), pred)
    with pytest.raises(UserError, match="hook 'blocks.0.attn.hook_q' was not captured"):
        cache["blocks.0.attn.hook_q"]
    with pytest.raises(UserError, match=r"hook 'blocks.9.hook_resid_post' does not exist; valid hooks: hook_embed, "):
        run_with_cache(model, p, ["blocks.9.hook_resid_post"])
    assert all(not hp._forward_hooks for hp in hook_points(model).values())


def test_lsa_products_of_the_construction():
    rows = lsa_products(_gd_model(4, 0.7))
    assert rows[0]["kq_vs_gd"]["cosine"] == pytest.approx(1.0)
    assert rows[0]["pv_vs_gd"]["cosine"] == pytest.approx(1.0) and rows[0]["pv_vs_gd"]["scale"] == pytest.approx(0.7)


def test_pasting_runs_and_needs_a_feature_task():
    from iclab.analysis import paste

    cfg = load_config(
        None,
        ["task.name=representation", "model.n_layer=2", "model.n_embd=16", "model.n_head=2", "model.encoder=stacked"],
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.task.n_dims)
    task = make_task(cfg.task)
    result = paste(model, task, layer=1, steps=30, n_eval=50)
    bayes = make_learner(task.relevant_learners()[0], task=task).label
    assert result["layer"] == 1 and set(result["curves"]) == {"trained upper layers", "random upper layers", bayes}
    assert all(len(c) == cfg.task.n_points and all(np.isfinite(c)) for c in result["curves"].values())
    with pytest.raises(UserError, match="pasting needs a task with a fixed feature map"):
        paste(model, _task(), steps=1)
    with pytest.raises(UserError, match="paste layer must be in 0 .. 1, got 5"):
        paste(model, task, layer=5, steps=1)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from iclab.training.loop import train

    run = tmp_path_factory.mktemp("analyze") / "r"
    cfg = load_config(
        None,
        [
            "task.n_dims=3",
            "task.n_points=7",
            "model.n_layer=2",
            "model.n_embd=16",
            "model.n_head=2",
            "model.encoder=stacked",
            "train.steps=150",
            "train.lr=3e-3",
            "train.warmup_steps=20",
            "train.device=cpu",
            "train.eval_every=0",
            "eval.n_prompts=64",
            "train.threads=1",
        ],
    )
    train(cfg, run, progress_bar=False)
    assert main(["eval", str(run), "--prompts", "64"]) == 0
    return run


@pytest.mark.slow
def test_analyze_writes_every_instrument_and_the_report(trained_run, capsys):
    assert (
        main(
            [
                "analyze",
                str(trained_run),
                "--prompts",
                "80",
                "--learner",
                "least_squares",
                "--learner",
                "ridge(lam=0.5)",
            ]
        )
        == 0
    )
    out = trained_run / "analysis"
    for name in (
        "probes.csv",
        "probes.png",
        "alignment.csv",
        "alignment_spd.png",
        "alignment_ilwd.png",
        "weights.csv",
        "weights.png",
        "attention.png",
        "order.json",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ran"] == ["probes", "alignment", "weights", "attention", "order"]
    assert "paste" in summary["skipped"]
    page = (trained_run / "report.html").read_text()
    assert "Analysis (iclab analyze" in page and "lowest SPD" in page


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--hook", "blocks.7.hook_resid_post"],
            "hook 'blocks.7.hook_resid_post' does not exist; valid hooks: hook_embed",
        ),
        (["--target", "phi"], "probe target 'phi' does not apply to task 'linear_regression'"),
        (["--only", "paste"], "--only paste: pasting needs a task with a fixed feature map"),
        (["--only", "probez"], "--only: unknown instrument 'probez'"),
        (["--learner", "lasso(alpha=-1)"], "lasso: alpha must be positive"),
        (["--prompts", "3"], "--prompts: must be at least 8, got 3"),
    ],
)
def test_analyze_bad_input_is_one_line_exit_2(trained_run, capsys, args, message):
    before = sorted(p.name for p in trained_run.iterdir())
    assert main(["analyze", str(trained_run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in trained_run.iterdir()) == before


def test_analyze_a_run_without_checkpoint_is_exit_2(tmp_path, capsys):
    from iclab.config import config_to_yaml

    run = tmp_path / "empty"
    run.mkdir()
    (run / "config.yaml").write_text(config_to_yaml(load_config(None, [])))
    assert main(["analyze", str(run)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and err.count("\n") == 1


@pytest.mark.parametrize("family", real_families())
def test_instruments_work_on_every_model_family(family):
    from iclab.analysis import probe_model

    cfg = load_config(None, [*tiny_model(family), "model.n_layer=2", "task.n_dims=3", "task.n_points=6"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 3)
    task = make_task(cfg.task)
    prompts = task.eval_prompts(40, seed=0)
    rows = probe_model(model, task, prompts, targets=["w_ols"], control=False)
    assert [r["depth"] for r in rows] == [0, 1, 2] and all(np.isfinite(r["r2_test"]) for r in rows)
    (row,) = alignment_table(model, task, prompts, ["least_squares"], ks=[3])
    assert all(np.isfinite(v) for k, v in row.items() if k not in ("learner", "k"))


def test_analyze_an_lsa_run_compares_its_products_with_the_construction(tmp_path):
    from iclab.training.loop import train

    run = tmp_path / "lsa"
    cfg = load_config(
        None,
        [
            "model.name=linear_self_attention",
            "model.encoder=stacked",
            "model.init_std=0.1",
            "task.n_dims=3",
            "task.n_points=7",
            "train.steps=300",
            "train.lr=3e-3",
            "train.warmup_steps=20",
            "train.device=cpu",
            "train.eval_every=0",
            "train.threads=1",
            "eval.after_train=false",
        ],
    )
    train(cfg, run, progress_bar=False)
    assert (
        main(
            [
                "analyze",
                str(run),
                "--only",
                "attention",
                "--only",
                "alignment",
                "--learner",
                "gd(steps=1, lr=1)",
                "--prompts",
                "64",
            ]
        )
        == 0
    )
    (layer,) = json.loads((run / "analysis" / "attention.json").read_text())
    assert (run / "analysis" / "lsa_products.png").is_file()
    # a trained one-layer LSA is close to one GD step: its products point the construction's way
    assert layer["kq_vs_gd"]["cosine"] > 0.5 and layer["pv_vs_gd"]["cosine"] > 0.5


def test_analyze_skips_slow_learners_unless_named(tmp_path):
    from iclab.training.loop import train

    run = tmp_path / "tree"
    cfg = load_config(
        None,
        [
            "task.name=decision_tree",
            "task.n_points=8",
            "model.n_layer=1",
            "model.n_embd=16",
            "model.n_head=2",
            "train.steps=5",
            "train.device=cpu",
            "train.eval_every=0",
            "train.threads=1",
            "eval.after_train=false",
        ],
    )
    train(cfg, run, progress_bar=False)
    assert make_learner("tree").slow and make_learner("nn_gd").slow and not make_learner("least_squares").slow
    assert main(["analyze", str(run), "--only", "order", "--prompts", "16"]) == 0
    order = json.loads((run / "analysis" / "order.json").read_text())
    assert "model" in order and "least_squares" in order and not any(k.startswith("tree") for k in order)
    assert main(["analyze", str(run), "--only", "order", "--prompts", "16", "--learner", "tree(max_depth=2)"]) == 0
    assert set(json.loads((run / "analysis" / "order.json").read_text())) == {"model", "tree(max_depth=2)"}
