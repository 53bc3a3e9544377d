"""A corpus of bad input: configs, command lines, damaged run folders, and every shift on every task.

Each case must end in one line on stderr (``iclab: error: ...``), exit code 2, no traceback, and leave every
file on disk as it was. The command line runs in-process (``iclab.cli.main``), so a traceback would surface
here as an exception; a few cases also run as real processes.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iclab.cli import main
from iclab.config import load_config, save_config

TINY = [
    "task.n_dims=3",
    "task.n_points=7",
    "model.n_layer=1",
    "model.n_embd=16",
    "model.n_head=2",
    "train.steps=4",
    "train.batch_size=8",
    "train.device=cpu",
    "train.threads=1",
    "train.log_every=2",
    "train.eval_every=0",
    "train.checkpoint_every=2",
    "eval.n_prompts=32",
]
TOKENS = ["task.name=regbench", "task.n_train=12", "task.max_length=40", "model.n_positions=null"]
TOK = [x for s in TOKENS for x in ("--set", s)]


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root``: its bytes' hash (files) or a marker (folders)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A working folder with a config, three trained runs (regression, classification, associative
    recall) and damaged copies of a run."""
    root = tmp_path_factory.mktemp("lab")
    save_config(load_config(None, TINY), root / "tiny.yaml")
    for name, extra in (
        ("lin", []),
        ("digits", ["task.name=digits_classification"]),
        ("recall", ["task.name=associative_recall", "task.n_points=12", "task.n_keys=4", "model.n_positions=null"]),
        ("tok", TOKENS),
    ):
        cwd = os.getcwd()
        os.chdir(root)
        try:
            assert main(["train", "tiny.yaml", "--out", name, *[x for s in extra for x in ("--set", s)]]) == 0
        finally:
            os.chdir(cwd)
    ckpt = "checkpoints/step-00000004"
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["analyze", "lin", "--only", "alignment", "--only", "order", "--prompts", "16"]) == 0
    finally:
        os.chdir(cwd)

    def damaged(name, change):
        shutil.copytree(root / "lin", root / name)
        change(root / name)

    damaged("no_config", lambda r: (r / "config.yaml").unlink())
    damaged("bad_yaml", lambda r: (r / "config.yaml").write_text("task: [unclosed\n"))
    damaged(
        "bad_field",
        lambda r: (r / "config.yaml").write_text(
            (r / "config.yaml").read_text().replace("n_embd: 16", "n_embd: sixteen")
        ),
    )
    damaged("no_checkpoints", lambda r: shutil.rmtree(r / "checkpoints"))
    damaged("garbage_model", lambda r: (r / ckpt / "model.pt").write_bytes(b"\x00not a checkpoint" * 10))
    damaged(
        "truncated_model", lambda r: (r / ckpt / "model.pt").write_bytes((r / ckpt / "model.pt").read_bytes()[:200])
    )
    damaged("tensor_model", lambda r: torch.save(torch.zeros(3), r / ckpt / "model.pt"))
    damaged("list_model", lambda r: torch.save([1, 2, 3], r / ckpt / "model.pt"))
    damaged(
        "wrong_weights", lambda r: torch.save({"backbone.read_in.weight": torch.zeros(2, 2)}, r / ckpt / "model.pt")
    )
    damaged("bad_state", lambda r: (r / ckpt / "state.json").write_text("{not json"))
    damaged("bad_rng", lambda r: torch.save({"cpu": torch.zeros(3)}, r / ckpt / "rng.pt"))
    damaged("bad_optimizer", lambda r: torch.save({"nothing": 1}, r / ckpt / "optimizer.pt"))
    damaged(
        "header_only_curves", lambda r: (r / "eval" / "curves.csv").write_text("learner,shift,k,mean,ci_low,ci_high\n")
    )
    damaged("garbage_curves", lambda r: (r / "eval" / "curves.csv").write_text("a,b\n1,2\n"))
    damaged("no_curves", lambda r: (r / "eval" / "curves.csv").unlink())
    damaged("bad_summary", lambda r: (r / "analysis" / "summary.json").write_text("{"))
    damaged("bad_alignment", lambda r: (r / "analysis" / "alignment.csv").write_text("x\n1\n"))
    damaged("bad_order", lambda r: (r / "analysis" / "order.json").write_text("[1, 2"))
    (root / "plain_folder").mkdir()
    (root / "plain_folder" / "notes.txt").write_text("mine")
    (root / "a_file").write_text("not a folder")
    (root / "binary.yaml").write_bytes(b"\xff\xfe\x00\x01")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "bad.yaml").write_text("train: {steps: 10\n")
    return root


CASES = [
    # --- configs (a file, then overrides) ---
    (["train", "missing.yaml"], "missing.yaml: no such config file"),
    (["train", "plain_folder"], "no such config file"),
    (["train", "bad.yaml"], "not valid YAML"),
    (["train", "binary.yaml"], "not valid YAML"),
    (["train", "list.yaml"], "expected a mapping"),
    (["train", "tiny.yaml", "--set", "trian.steps=5"], "trian: unknown section"),
    (["train", "tiny.yaml", "--set", "train.stepz=5"], "train.stepz: unknown field"),
    (["train", "tiny.yaml", "--set", "train.steps=many"], "train.steps: expected an integer"),
    (["train", "tiny.yaml", "--set", "train.steps=0"], "train.steps: must be positive"),
    (["train", "tiny.yaml", "--set", "train.lr=nan"], "train.lr: must be positive"),
    (["train", "tiny.yaml", "--set", "train.lr=inf"], "train.lr: must be a finite number"),
    (["train", "tiny.yaml", "--set", "train.beta1=1.5"], "train.beta1: must be in [0, 1)"),
    (["train", "tiny.yaml", "--set", "train.loss_on=first"], "train.loss_on: must be 'all' or 'last'"),
    (["train", "tiny.yaml", "--set", "task.name=quadratic"], "task.name: unknown task 'quadratic'"),
    (["train", "tiny.yaml", "--set", "model.name=gpt5"], "model.name: unknown model 'gpt5'"),
    (["train", "tiny.yaml", "--set", "model.encoder=zigzag"], "model.encoder: must be one of"),
    (
        ["train", "tiny.yaml", "--set", "model.name=rnn", "--set", "model.encoder=stacked"],
        "model.encoder: rnn takes the interleaved encoder",
    ),
    (["train", "tiny.yaml", "--set", "model.n_positions=3"], "model.n_positions: must be at least"),
    (["train", "tiny.yaml", "--set", "model.n_embd=15"], "model.n_embd: must be divisible by model.n_head"),
    (["train", "tiny.yaml", "--set", "task.x_distribution=cauchy"], "task.x_distribution: must be 'gaussian' or"),
    (["train", "tiny.yaml", "--set", "eval.learners=[lassso]"], "eval.learners[0]: unknown learner 'lassso'"),
    (["train", "tiny.yaml", "--set", "eval.learners=[dmmse]"], "eval.learners[0]: learner 'dmmse' does not apply"),
    (["train", "tiny.yaml", "--set", "eval.learners=['ridge(lam=-1)']"], "ridge: lam must be positive"),
    (["train", "tiny.yaml", "--set", "eval.shifts=[upside_down]"], "eval.shifts[0]: unknown shift"),
    (
        ["train", "tiny.yaml", "--set", "task.name=digits_classification", "--set", "eval.shifts=[scale_x]"],
        "eval.shifts[0]: shift 'scale_x' does not apply to task 'digits_classification'",
    ),
    (["train", "tiny.yaml", "--set", "eval.shifts=['scale_x(scale=-2)']"], "must be a positive number"),
    (["train", "tiny.yaml", "--set", "name=.."], "name: must be a plain folder name"),
    (["train", "tiny.yaml", "--set", "name=a/b"], "name: must be a plain folder name"),
    (["train", "tiny.yaml", "--set", "imports=[no_such_module_anywhere]"], "imports[0]: cannot import"),
    (["train", "tiny.yaml", "--set", "imports=[missing_file.py]"], "imports[0]: missing_file.py: no such file"),
    (["train", "tiny.yaml", "--set", "train.steps"], "--set: expected key=value"),
    (["train", "tiny.yaml", "--set", "train.steps.x=1"], "--set train.steps.x: train.steps is not a section"),
    # --- devices and sizes: refused before anything is written ---
    (["train", "tiny.yaml", "--set", "train.device=meta"], "train.device: must be 'auto', 'cpu'"),
    (["train", "tiny.yaml", "--set", "train.device=mps"], "train.device: 'mps' asked for"),
    (["train", "tiny.yaml", "--set", "train.device=cuda:7"], "train.device: 'cuda:7' asked for"),
    (["train", "tiny.yaml", "--set", "train.device=tpu"], "train.device: must be"),
    (["train", "tiny.yaml", "--set", "train.device=cuda:-1"], "train.device"),
    (["train", "tiny.yaml", "--set", "task.n_dims=1000000000"], "lower train.batch_size, task.n_points, task.n_dims"),
    (["train", "tiny.yaml", "--set", "train.batch_size=1000000000"], "a training step needs"),
    # sizes no machine holds are refused from each family's closed-form bound, before any module is built (building
    # a million blocks would take minutes): every family, and a token task
    *[
        (["train", "tiny.yaml", "--set", f"model.name={family}", "--set", "model.n_layer=1000000"], "model.n_layer")
        for family in ("transformer", "memory", "mamba", "rnn")
    ],
    (
        [
            "train",
            "tiny.yaml",
            "--set",
            "model.name=linear_self_attention",
            "--set",
            "model.encoder=stacked",
            "--set",
            "model.n_layer=100000000",
        ],
        "model.n_layer",
    ),
    (["train", "--recipe", "akyurek2024_regbench", "--set", "model.n_layer=1000000"], "model.n_layer"),
    (["train", "tiny.yaml", "--set", "model.n_embd=4000000", "--set", "model.n_head=1"], "model.n_embd"),
    (["train", "tiny.yaml", "--set", "model.n_embd=2000000", "--set", "model.n_head=1"], "lower model.n_embd"),
    # --- the command line ---
    (["train", "tiny.yaml", "--recipe", "demo"], "give a CONFIG file or --recipe, not both"),
    (["train", "--recipe", "gpt5_scaling"], "--recipe: unknown recipe 'gpt5_scaling'"),
    (["train"], "train needs a CONFIG file"),
    (["train", "tiny.yaml", "--out", "lin", "--resume", "--overwrite"], "give --resume or --overwrite, not both"),
    (["train", "--resume", "--out", "plain_folder"], "config.yaml: missing"),
    (["train", "--resume", "--out", "nowhere"], "nowhere: no such run folder"),
    (["train", "tiny.yaml", "--out", "."], "is the working folder or one of its ancestors"),
    (["train", "tiny.yaml", "--out", ".."], "is the working folder or one of its ancestors"),
    (["train", "tiny.yaml", "--out", "/", "--overwrite"], "is the working folder or one of its ancestors"),
    (["train", "tiny.yaml", "--out", "~"], "is the home folder or the root"),
    (["train", "tiny.yaml", "--out", "a_file"], "a_file: exists and is not a folder"),
    (["train", "tiny.yaml", "--out", "a_file/run"], "is a file, so the run folder cannot be made"),
    (["train", "tiny.yaml", "--out", "plain_folder"], "is not an iclab run folder"),
    (["train", "tiny.yaml", "--out", "plain_folder", "--overwrite"], "is not an iclab run folder"),
    (["train", "tiny.yaml", "--out", "lin"], "lin: already holds a run"),
    (["train", "tiny.yaml", "--out", "lin", "--overwrite", "--set", "train.device=cuda"], "train.device: 'cuda'"),
    (["train", "tiny.yaml", "--out", "lin", "--overwrite", "--set", "task.n_dims=1000000000"], "a training step needs"),
    (["demo", "--out", "lin"], "lin: already holds a run"),
    (["demo", "--set", "train.steps=-1"], "train.steps: must be positive"),
    (["--import", "no_such_module_anywhere", "list"], "--import no_such_module_anywhere: cannot import"),
    (["trian", "tiny.yaml"], "invalid choice: 'trian'"),
    (["eval"], "eval: the following arguments are required: run_dir"),
    (["eval", "lin", "--prompts", "many"], "eval: argument --prompts: invalid int value: 'many'"),
    (["train", "tiny.yaml", "--sett", "train.steps=5"], "unrecognized arguments: --sett"),
    # --- eval ---
    (["eval", "nowhere"], "nowhere: no such run folder"),
    (["eval", "plain_folder"], "config.yaml: missing"),
    (["eval", "lin", "--shift", "upside_down"], "unknown shift 'upside_down'"),
    (["eval", "lin", "--shift", "scale_x(size=2)"], "shift 'scale_x' takes scale"),
    (["eval", "digits", "--shift", "scale_x"], "shift 'scale_x' does not apply to task 'digits_classification'"),
    (["eval", "digits", "--shift", "noisy_y"], "shift 'noisy_y' does not apply to task 'digits_classification'"),
    (["eval", "lin", "--learner", "ridge(lam='0.1)"], "cannot read the value of 'lam'"),
    (["eval", "lin", "--learner", "ridge(lam=0.1"], "expected a learner name or call"),
    (["eval", "lin", "--learner", "ridge(alpha=0.1)"], "learner 'ridge' has no parameter 'alpha'"),
    (["eval", "lin", "--learner", "dmmse"], "learner 'dmmse' does not apply"),
    (["eval", "lin", "--prompts", "0"], "--prompts: must be a positive integer"),
    (["eval", "lin", "--device", "meta"], "--device: must be 'auto', 'cpu'"),
    (["eval", "lin", "--prompts", "100000000000"], "--prompts: evaluating 100000000000 prompts needs"),
    (["analyze", "lin", "--prompts", "100000000000"], "--prompts: evaluating 100000000000 prompts needs"),
    (["train", "tiny.yaml", "--set", "eval.n_prompts=100000000000"], "eval.n_prompts: evaluating"),
    (["eval", "lin", "--device", "cuda:7"], "--device: 'cuda:7' asked for"),
    # --- damaged run folders ---
    (["eval", "no_config"], "no_config/config.yaml: missing"),
    (["eval", "bad_yaml"], "not valid YAML"),
    (["eval", "bad_field"], "model.n_embd: expected an integer"),
    (["eval", "no_checkpoints"], "no checkpoint found"),
    (["eval", "garbage_model"], "model.pt: corrupt checkpoint file"),
    (["eval", "truncated_model"], "model.pt: corrupt checkpoint file"),
    (["eval", "tensor_model"], "model.pt: not an iclab checkpoint file"),
    (["eval", "list_model"], "model.pt: not an iclab checkpoint file"),
    (["eval", "wrong_weights"], "weights do not match the model in config.yaml"),
    (["eval", "bad_state"], "state.json: corrupt checkpoint state"),
    (["eval", "bad_rng"], "rng.pt: not an iclab checkpoint file"),
    (["train", "--resume", "--out", "bad_optimizer"], "optimizer.pt: not an iclab checkpoint file"),
    (["train", "--resume", "--out", "garbage_model"], "model.pt: corrupt checkpoint file"),
    (["train", "--resume", "--out", "bad_field"], "model.n_embd: expected an integer"),
    (["report", "header_only_curves"], "holds no curves"),
    (["report", "garbage_curves"], "not a curves file"),
    (["report", "no_curves"], "curves.csv: missing"),
    (["report", "nowhere"], "no such run folder"),
    (["report", "bad_summary"], "summary.json: damaged"),
    (["report", "bad_alignment"], "the alignment results are damaged"),
    (["report", "bad_order"], "the order results are damaged"),
    # --- token tasks ---
    (["train", "tiny.yaml", *TOK, "--set", "task.n_train=0"], "task.n_train: must be at least 1"),
    (["train", "tiny.yaml", *TOK, "--set", "model.n_positions=20"], "model.n_positions: must be at least 39"),
    (["train", "tiny.yaml", "--set", "task.name=regbench"], "model.n_positions: must be at least 511"),
    (["train", "tiny.yaml", *TOK, "--set", "task.n_letters=30"], "task.n_letters: must be at most 26"),
    (["train", "tiny.yaml", *TOK, "--set", "task.max_edges=5"], "task.max_edges: must be less than task.min_states"),
    (
        ["train", "tiny.yaml", *TOK, "--set", "model.name=linear_self_attention", "--set", "model.encoder=stacked"],
        "model.name: must be a family with a token read-in",
    ),
    (
        ["train", "tiny.yaml", *TOK, "--set", "eval.learners=[least_squares]"],
        "eval.learners[0]: learner 'least_squares' does not apply to task 'regbench'",
    ),
    (["train", "tiny.yaml", *TOK, "--set", "eval.shifts=[noisy_y]"], "eval.shifts[0]: shift 'noisy_y' does not apply"),
    (["train", "tiny.yaml", *TOK, "--set", "train.loss_on=last"], "train.loss_on: must be 'all' for a token task"),
    (["train", "tiny.yaml", "--set", "model.ngram_heads=[2]"], "model.ngram_heads: n-gram layers read token ids"),
    (["train", "tiny.yaml", "--set", "model.norm=batchnorm"], "model.norm"),
    (["train", "tiny.yaml", "--set", "model.embedding=glyphs"], "model.embedding: must be one of trainable"),
    (
        ["train", "--recipe", "zhai2022_positions", "--set", "model.positional=learned"],
        "model.positional: must be none for task position_prediction: position embeddings would tell",
    ),
    (["train", "--recipe", "zhai2022_positions", "--set", "task.visible=0"], "task.visible: must be in (0, 1]"),
    (
        ["train", "--recipe", "zhai2022_positions", "--set", "task.base={name: linear_regression}"],
        "task.base.name: must be a token task other than position_prediction, got 'linear_regression'",
    ),
    (
        ["train", "--recipe", "zhai2022_positions", "--set", "task.base.length=40"],
        "task.base.length: must be between 2 and task.n_symbols (26)",
    ),
    (["train", "--recipe", "zhai2022_positions(order=reversed)"], "order: must be sorted or shuffled"),
    (["train", "--recipe", "arora2023_mqar(n_embd=W)"], "--recipe: arora2023_mqar's n_embd must be int, got 'W'"),
    (
        ["train", "tiny.yaml", "--set", "model.linear=hashed", "--set", "model.hash_bits=5"],
        "model.hash_bits: must divide n_embd (16): each table reads hash_bits dimensions, got 5",
    ),
    (
        ["train", "tiny.yaml", "--set", "model.linear=hashed", "--set", "model.hashed=[qkv, ffn]"],
        "model.hashed[1]: must be one of qkv, proj, mlp, got 'ffn'",
    ),
    (
        [
            "train",
            "tiny.yaml",
            *TOK,
            "--set",
            "model.name=transformer_program",
            "--set",
            "model.embedding=frozen_random",
        ],
        "model.embedding: transformer_program has no embedding table to freeze",
    ),
    (
        ["train", "tiny.yaml", "--set", "model.embedding=frozen_glyph"],
        "model.embedding: frozen embeddings are tables of token ids; task linear_regression has real-valued",
    ),
    (
        [
            "train",
            "tiny.yaml",
            "--set",
            "model.name=hybrid",
            "--set",
            "model.blocks=[attention(rope=true, token_shift=true)]",
        ],
        "model.blocks[0]: 'attention(rope=true' was cut at a comma; quote an entry with several settings",
    ),
    (["train", "tiny.yaml", "--set", "model.mlp=relu"], "model.mlp"),
    (
        ["train", "tiny.yaml", "--set", "model.linear=pattention", "--set", "model.mlp=swiglu"],
        "model.mlp: must be gelu under linear: pattention",
    ),
    (
        ["train", "tiny.yaml", "--set", "model.name=hybrid", "--set", "model.blocks=[attention, conv]"],
        "model.blocks[1]: unknown block 'conv'; blocks: attention, memory, mamba, mlp",
    ),
    (
        ["train", "tiny.yaml", "--set", "model.name=hybrid", "--set", "model.blocks=['memory(rule=hebb)']"],
        "model.blocks[0].rule: must be one of",
    ),
    (
        ["train", "tiny.yaml", "--set", "model.name=hybrid", "--set", "model.blocks=['attention(rule=delta)']"],
        "model.blocks[0].rule: not a setting of an attention block; its settings: rope, token_shift, qkv_conv",
    ),
    (
        ["train", "tiny.yaml", "--set", "model.name=hybrid", "--set", "model.blocks=[]"],
        "model.blocks: must list at least one block",
    ),
    (
        [
            "train",
            "tiny.yaml",
            "--set",
            "model.name=hybrid",
            "--set",
            "model.n_head=2",
            "--set",
            "model.n_embd=18",
            "--set",
            "model.blocks=['attention(rope=true)']",
        ],
        "model.blocks[0].rope: needs an even head width",
    ),
    (["train", "tiny.yaml", "--set", "eval.learners=['ngram(n=2)']"], "predicts next tokens"),
    (["train", "tiny.yaml", *TOK, "--set", "eval.learners=['ngram(n=7)']"], "ngram: n must be between 1 and 4"),
    (["eval", "tok", "--learner", "ridge"], "learner 'ridge' does not apply to task 'regbench'"),
    (["eval", "tok", "--shift", "scale_x"], "shift 'scale_x' does not apply to task 'regbench'"),
    (["eval", "lin", "--learner", "automaton"], "learner 'automaton' does not apply to task 'linear_regression'"),
    (["analyze", "tok", "--target", "w"], "probe target 'w' does not apply to task 'regbench'"),
    (["analyze", "tok", "--only", "probes"], "--only probes: probes does not apply to task 'regbench'"),
    (["analyze", "lin", "--only", "ngram_heads"], "it is defined for token sequences"),
    # --- analyze ---
    (["analyze", "lin", "--only", "xray"], "--only: unknown instrument 'xray'"),
    (["analyze", "lin", "--hook", "blocks.9.hook_resid_post"], "does not exist"),
    (["analyze", "lin", "--target", "w_lasso"], "probe target 'w_lasso' is unknown"),
    (["analyze", "lin", "--target", "phi"], "probe target 'phi' does not apply"),
    (["analyze", "digits", "--target", "w"], "probe target 'w' does not apply"),
    (["analyze", "lin", "--only", "paste"], "--only paste:"),
    (["analyze", "lin", "--prompts", "3"], "--prompts: must be at least 8"),
    (["analyze", "lin", "--paste-steps", "0"], "--paste-steps: must be a positive integer"),
    (["analyze", "lin", "--threads", "0"], "--threads: must be a positive integer"),
    (["analyze", "lin", "--learner", "lasso(alpha=-1)"], "alpha"),
    (["analyze", "no_checkpoints"], "no checkpoint found"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0])[:70] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(argv, message, lab, capsys, monkeypatch):
    monkeypatch.chdir(lab)
    home = lab.parent / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))  # "~" is a folder of this test, not the real home
    argv = [str(Path(a).expanduser()) if a == "~" else a for a in argv]
    before = snapshot(lab)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors leave through SystemExit, as in a real process
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("iclab: error: ") and message in lines[0], lines[0]
    assert snapshot(lab) == before


def test_the_corpus_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "digits", "--shift", "scale_x"],
        ["eval", "lin", "--device", "meta"],
        ["train", "tiny.yaml", "--set", "task.n_dims=1000000000"],
        ["eval", "tensor_model"],
    ],
)
def test_a_real_process_prints_one_line_too(argv, lab):
    before = snapshot(lab)
    out = subprocess.run([sys.executable, "-m", "iclab", *argv], capture_output=True, text=True, cwd=lab, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert snapshot(lab) == before


@pytest.mark.slow
def test_every_shift_on_every_task_runs_or_is_refused_in_one_line():
    """What a task declares about shifts holds: a shift it takes evaluates, one it does not is refused when
    the config is read."""
    from iclab.errors import ConfigError
    from iclab.learners import make_learner
    from iclab.tasks import SHIFTS, TASKS, apply_shift, make_task

    for name in sorted(TASKS):
        extra = ["task.n_keys=4", "task.n_points=12"] if name == "associative_recall" else []
        extra += ["model.positional=none"] if name == "position_prediction" else []  # (positions would tell)
        task = make_task(load_config(None, [f"task.name={name}", *extra]).task)
        for shift in SHIFTS:
            reason = task.shift_unsupported(shift)
            if reason is None:
                for _, prompts in apply_shift(shift, task, 4, seed=0):
                    if task.prompt_kind == "tokens":
                        assert make_learner("unigram").predict(prompts).shape[:2] == prompts.tokens.shape
                    else:
                        assert make_learner("zero").predict(prompts).shape[:2] == prompts.ys.shape[:2]
            else:
                with pytest.raises(ConfigError) as info:
                    load_config(None, [f"task.name={name}", *extra, f"eval.shifts=[{shift}]"])
                assert "\n" not in str(info.value) and reason in str(info.value)


def test_damaged_metrics_lines_are_skipped_not_fatal(lab, capsys, monkeypatch):
    """metrics.jsonl is appended to during training: a line cut by a crash, or one that is not what training
    writes, is left out of the report's training plot; the report is still written."""
    monkeypatch.chdir(lab)
    run = lab / "metrics_damaged"
    shutil.copytree(lab / "lin", run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": "high"}\n[1, 2]\n{"step": 6, "lo\n')
    assert main(["report", str(run)]) == 0
