"""Configs: round trip, overrides, and every kind of bad input named clearly."""

import pytest

from iclab.config import (
    apply_overrides,
    load_config,
    run_config_from_dict,
    save_config,
    to_dict,
)
from iclab.errors import ConfigError
from iclab.recipes import RECIPES


def test_defaults_round_trip(tmp_path):
    cfg = load_config(None, ["train.lr=3e-4", "task.noise_std=0.5", "eval.learners=[least_squares, 'knn(k=2)']"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert again.train.lr == 3e-4 and again.eval.learners == ["least_squares", "knn(k=2)"]
    assert again.model.n_positions == 2 * cfg.task.n_points - 1  # resolved and saved


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_round_trip(name, tmp_path):
    cfg = RECIPES[name]()
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_yaml_file_with_partial_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: small\ntask:\n  n_dims: 3\ntrain:\n  lr: 1e-3\n  steps: 10\n")
    cfg = load_config(path, ["model.n_layer=1"])
    assert (cfg.name, cfg.task.n_dims, cfg.train.lr, cfg.train.steps, cfg.model.n_layer) == ("small", 3, 1e-3, 10, 1)


def test_overrides_do_not_touch_the_input():
    raw = {"train": {"steps": 5}}
    out = apply_overrides(raw, ["train.steps=7", "model.n_layer=2"])
    assert raw == {"train": {"steps": 5}} and out["train"]["steps"] == 7 and out["model"]["n_layer"] == 2


BAD = [
    (["trian.steps=5"], "trian: unknown section; allowed: name, task, model, train, eval"),
    (["train.stepz=5"], "train.stepz: unknown field; allowed fields: steps,"),
    (["task.curriculum.dim_start=2"], "task.curriculum.dim_start: unknown field"),
    (["train.steps=ten"], "train.steps: expected an integer, got 'ten'"),
    (["train.steps=2.5"], "train.steps: expected an integer, got 2.5"),
    (["train.lr=fast"], "train.lr: expected a number, got 'fast'"),
    (["train.steps=0"], "train.steps: must be positive, got 0"),
    (["train.batch_size=-4"], "train.batch_size: must be positive, got -4"),
    (["task.n_dims=0"], "task.n_dims: must be positive, got 0"),
    (["task.n_points=-1"], "task.n_points: must be positive"),
    (["model.n_layer=0"], "model.n_layer: must be positive"),
    (["model.n_embd=30", "model.n_head=4"], "model.n_embd: must be divisible by model.n_head (4), got 30"),
    (["task.noise_std=-0.1"], "task.noise_std: must be zero or positive, got -0.1"),
    (["train.lr=nan"], "train.lr: must be positive, got nan"),
    (["train.beta2=1.0"], "train.beta2: must be in [0, 1), got 1.0"),
    (
        ["task.name=linear_regresion"],
        "task.name: unknown task 'linear_regresion' (did you mean 'linear_regression'?); registered: arithmetic, ",
    ),
    (
        ["model.name=gpt5"],
        "model.name: unknown model 'gpt5'; registered: hybrid, linear_self_attention, mamba, memory, rnn, transformer",
    ),
    (["model.encoder=zigzag"], "model.encoder: must be one of interleaved, stacked, set, got 'zigzag'"),
    (["eval.learners=[lassso]"], "eval.learners[0]: unknown learner 'lassso'; registered:"),
    (["eval.learners=['ridge(lam=-1)']"], "eval.learners[0]: ridge: lam must be positive, got -1"),
    (["eval.shifts=[upside_down]"], "eval.shifts[0]: unknown shift 'upside_down'; available: standard,"),
    (
        ["model.n_positions=10"],
        "model.n_positions: must be at least 21 for prompts of task.n_points=11 with the interleaved encoder, got 10",
    ),
    (["task.curriculum.dims_start=9"], "task.curriculum.dims_start: must be at most task.n_dims (5), got 9"),
    (["train.device=tpu"], None),  # checked when training starts (see test_cli)
    (["task=3"], "task: expected a mapping of fields, got 3"),
    (["train.steps"], "--set: expected key=value"),
    (["train.steps.x=1"], "train.steps: expected an integer, got {'x': 1}"),
]

MODEL_BAD = [  # the model zoo's options (ids are made unique by the model name)
    (
        ["model.name=mamba", "model.encoder=stacked"],
        "model.encoder: mamba takes the interleaved encoder, got 'stacked'",
    ),
    (["model.name=mamba", "model.d_state=0"], "model.d_state: must be positive, got 0"),
    (["model.name=mamba", "model.form=fft"], "model.form: must be one of auto, scan, loop, got 'fft'"),
    (["model.name=mamba", "model.n_heads=2"], "model.n_heads: unknown field"),
    (
        ["model.name=memory", "model.rule=omega", "model.form=parallel"],
        "model.form: the omega rule has the forms auto, chunk, recurrent, got 'parallel'",
    ),
    (
        ["model.name=memory", "model.feature_map=cubic"],
        "model.feature_map: must be one of identity, poly2, got 'cubic'",
    ),
    (
        ["model.name=memory", "model.rule=omega", "model.form=recurrent", "model.window=0"],
        "model.window: must be positive, got 0",
    ),
    (
        ["model.name=memory", "model.rule=hopfield"],
        "model.rule: must be one of linear, decay, delta, gated_delta, momentum, omega, got 'hopfield'",
    ),
    (["task.name=associative_recall", "task.n_keys=48"], "task.n_keys: must be less than task.n_points (48)"),
]
BAD += MODEL_BAD


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_config_names_the_field(overrides, message):
    if message is None:
        load_config(None, overrides)
        return
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listy)


def test_to_dict_is_plain_yaml():
    import yaml

    data = to_dict(load_config(None))
    assert run_config_from_dict(yaml.safe_load(yaml.safe_dump(data))) == load_config(None)


def test_shipped_configs_parse():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


def test_one_switch_moves_a_recipe_to_another_family():
    from iclab.recipes import demo

    base = to_dict(demo())
    rnn = run_config_from_dict(apply_overrides(base, ["model.name=rnn", "model.cell=gru"])).model
    assert (rnn.name, rnn.cell, rnn.n_layer, rnn.n_embd, rnn.encoder) == ("rnn", "gru", 4, 64, "interleaved")
    mamba = run_config_from_dict(apply_overrides(base, ["model.name=mamba"])).model
    assert mamba.encoder == "interleaved" and mamba.n_embd == 64  # the recipe's stacked encoder is dropped
    lsa = run_config_from_dict(apply_overrides(base, ["model.name=linear_self_attention"])).model
    assert lsa.encoder == "stacked" and lsa.n_layer == 4
    task = run_config_from_dict(apply_overrides(base, ["task.name=sparse_linear_regression", "task.sparsity=2"])).task
    assert (task.n_dims, task.n_points, task.sparsity) == (5, 11, 2)
    with pytest.raises(ConfigError, match="model.n_head: unknown field"):  # set explicitly after the switch: an error
        run_config_from_dict(apply_overrides(base, ["model.name=rnn", "model.n_head=2"]))


def test_a_switch_leaves_choices_at_the_old_default_to_the_new_family():
    """Sizes carry over; a flag or named option left at the old family's default takes the new family's default
    (a transformer's token_shift=false is not a wish: the memory layer keeps its token shift on)."""
    from iclab.recipes import akyurek2024_regbench

    base = to_dict(akyurek2024_regbench())
    memory = run_config_from_dict(apply_overrides(base, ["model.name=memory"])).model
    assert (memory.token_shift, memory.n_layer, memory.n_head, memory.n_embd) == (True, 2, 2, 64)
    chosen = run_config_from_dict(apply_overrides(base, ["model.token_shift=true", "model.name=memory"])).model
    assert chosen.token_shift is True
    kept_off = run_config_from_dict(apply_overrides(base, ["model.name=memory", "model.token_shift=false"])).model
    assert kept_off.token_shift is False
    recurrent = apply_overrides(base, ["model.name=memory", "model.form=recurrent"])  # a choice: kept, and refused
    with pytest.raises(ConfigError, match="^model.form: must be one of auto, scan, loop, got 'recurrent'"):
        run_config_from_dict(apply_overrides(recurrent, ["model.name=mamba"]))
    parallel = apply_overrides(base, ["model.name=memory"])  # memory's default form does not reach mamba
    assert run_config_from_dict(apply_overrides(parallel, ["model.name=mamba"])).model.form == "auto"
