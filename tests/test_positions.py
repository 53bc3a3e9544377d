"""Position prediction as a pretext task (issue 27, section 4): the ordered_set task, the exact position posterior
against brute-force enumeration, the network's equivariance (nothing but content can tell it positions), the
visible keys, fine-tuning with positions, and bad settings refused."""

import itertools
import json

import numpy as np
import pytest
import torch

from iclab.config import load_config
from iclab.kinds import build_for_task
from iclab.kinds.tokens.metrics import token_metrics
from iclab.learners import make_learner
from iclab.tasks import make_task

PRETEXT = ["task.name=position_prediction", "model.positional=none", "model.n_layer=2", "model.n_embd=16"]
PRETEXT += ["model.n_head=2"]


def _task(*sets):
    return make_task(load_config(None, [*PRETEXT, *sets]).task)


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_ordered_set_draws_distinct_symbols_in_order_and_its_next_symbol_sets(order):
    task = make_task(load_config(None, ["task.name=ordered_set", f"task.order={order}"]).task)
    p = task.eval_prompts(300, seed=0)
    toks = p.tokens.numpy()
    assert all(len(set(row)) == 12 and 0 not in row for row in toks)
    increasing = (np.diff(toks, axis=1) > 0).all(1)
    assert increasing.all() if order == "sorted" else increasing.mean() < 0.01
    oracle = token_metrics(make_learner("oracle", task=task).predict(p), p)["accuracy"][p.scored]
    assert float(oracle.mean()) == 1.0
    valid = p.info["valid"]
    for i, t in [(0, 0), (5, 4), (9, 10)]:  # the next-symbol sets: unused symbols, larger ones when sorted
        used = set(toks[i, : t + 1].tolist())
        expect = {s for s in range(1, 27) if s not in used and (order == "shuffled" or s > toks[i, t])}
        assert set(torch.nonzero(valid[i, t]).flatten().tolist()) == expect


def test_position_posterior_equals_brute_force_enumeration():
    """Independent: enumerate every set of 4 symbols of 7 and every 2 visible positions (uniform), keep those that
    show the same visible symbols, and count where the query's symbol sits."""
    from iclab.learners.token_learners import position_posterior

    task = _task("task.base.n_symbols=7", "task.base.length=4", "task.visible=0.5")
    v_count, length = 7, 4
    prompts = task.eval_prompts(20, seed=3)  # of the 35 sets there are
    got = position_posterior(task, prompts).numpy()
    worlds = [
        (s, k)
        for s in itertools.combinations(range(1, v_count + 1), length)
        for k in itertools.combinations(range(length), 2)
    ]
    for i in range(prompts.batch_size):
        toks = prompts.tokens[i].tolist()
        visible = {toks[j] for j in range(length) if prompts.info["key_mask"][i, j]}
        for p, v in enumerate(toks):
            counts = np.zeros(length)
            for s, k in worlds:
                if v in s and {s[j] for j in k} == visible:
                    counts[s.index(v)] += 1
            assert np.abs(got[i, p] - counts / counts.sum()).max() < 1e-12


def test_position_bayes_is_chance_when_shuffled_and_exact_when_all_visible():
    shuffled = _task("task.base.order=shuffled")
    p = shuffled.eval_prompts(100, seed=0)
    acc = token_metrics(make_learner("position_bayes", task=shuffled).predict(p), p)["accuracy"][p.scored]
    assert abs(float(acc.mean()) - 1 / 12) < 1e-12
    full = _task("task.visible=1.0")
    p = full.eval_prompts(100, seed=0)
    acc = token_metrics(make_learner("position_bayes", task=full).predict(p), p)["accuracy"][p.scored]
    assert float(acc.mean()) == 1.0  # every symbol visible: the position is the count of the symbols below


def test_the_network_is_equivariant_so_only_content_can_tell_positions():
    """The leak check, exactly: with no position embeddings and the whole prompt read at once, reordering the
    tokens (and their visibility) reorders the predictions and changes nothing else; a hidden token's symbol is
    read by no other token."""
    cfg = load_config(None, PRETEXT)
    task = make_task(cfg.task)
    torch.manual_seed(0)
    model = build_for_task(cfg.model, task).eval()
    p = task.eval_prompts(6, seed=1)
    keys = p.info["key_mask"]
    perm = torch.randperm(12)
    with torch.no_grad():
        out = model(p.tokens, key_mask=keys)
        permuted = model(p.tokens[:, perm], key_mask=keys[:, perm])
        torch.testing.assert_close(permuted, out[:, perm], rtol=1e-5, atol=1e-5)
        hidden = int(torch.nonzero(~keys[0])[0])
        changed = p.tokens.clone()
        changed[0, hidden] = 26 if changed[0, hidden] != 26 else 25
        other = model(changed, key_mask=keys)
    rest = torch.arange(12) != hidden
    torch.testing.assert_close(other[0, rest], out[0, rest])


def test_visible_keys_are_a_function_of_seed_and_step():
    task = _task("task.visible=0.25")
    a, b = task.train_batch(16, 0, 5), task.train_batch(16, 0, 5)
    assert torch.equal(a.info["key_mask"], b.info["key_mask"]) and torch.equal(a.tokens, b.tokens)
    assert (a.info["key_mask"].sum(1) == 3).all()  # round(0.25 * 12)
    assert not torch.equal(a.info["key_mask"], task.train_batch(16, 0, 6).info["key_mask"])
    held = task.eval_prompts(50, seed=0)
    assert torch.equal(held.info["key_mask"], task.eval_prompts(50, seed=0).info["key_mask"])
    assert (held.targets == torch.arange(12)).all()


def test_pretext_then_fine_tuning_with_positions(tmp_path):
    """A short pretext run learns above chance; fine-tuning it on the base task with learned positions keeps its
    blocks and embedding, and starts its positions and read-out afresh."""
    from iclab.cli import main
    from iclab.evaluate import evaluate_run
    from iclab.rundir import read_summary
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.training.loop import train

    run = [*PRETEXT, "train.steps=150", "train.batch_size=32", "train.eval_every=0", "train.device=cpu"]
    run += ["train.threads=1", "train.lr=3e-3", "eval.n_prompts=200"]
    cfg = load_config(None, run)
    train(cfg, tmp_path / "pre", progress_bar=False)
    evaluate_run(tmp_path / "pre", plot=False)
    by = {(r["learner"], r["metric"]): r["mean"] for r in read_summary(tmp_path / "pre" / "eval" / "summary.csv")}
    assert by[("model", "accuracy")] > 3 / 12  # chance is 1/12; the exact posterior's:
    assert by[("position_bayes", "accuracy")] > 0.45

    assert (
        main(
            [
                "finetune",
                str(tmp_path / "pre"),
                "--method",
                "full",
                "--set",
                "task.name=ordered_set",
                "--set",
                "model.positional=learned",
                "--set",
                "train.steps=4",
                "--out",
                str(tmp_path / "ft"),
            ]
        )
        == 0
    )
    pre, tuned = latest_checkpoint(tmp_path / "pre").model, latest_checkpoint(tmp_path / "ft").model
    assert "backbone.pos_embed.weight" in tuned and "backbone.pos_embed.weight" not in pre
    assert tuned["backbone.read_out.weight"].shape[0] == 27 and pre["backbone.read_out.weight"].shape[0] == 12
    added = json.loads((tmp_path / "ft" / "start.json").read_text())["added"]
    assert set(added) == {"backbone.pos_embed.weight", "backbone.read_out.weight", "backbone.read_out.bias"}
