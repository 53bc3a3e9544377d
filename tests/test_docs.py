"""The examples in README.md and docs/ run, at tiny sizes, so they cannot rot.

- README's Python blocks run in order as one script (training shortened by an override).
- Every ``iclab ...`` command in README.md and docs/*.md, in code blocks and in inline code, runs: placeholder
  run folders (``RUN``, ``RUN_DIR``, ``runs/demo``, ...) point at a tiny trained run, and training commands get
  tiny-size overrides. A command shown with its ``iclab: error:`` output must print exactly that line.
- docs/extending.md's Python blocks are run by tests/test_architecture.py.

- Every ``python benchmarks/...`` command runs with ``--smoke`` (each script's toy sizes: the command line and
  the code path are checked, the figures are not; the measurements themselves are run by hand and recorded
  in docs/benchmarks.md).

- ``iclab sweep FILE`` runs with ``--dry-run`` (the file is read and every point parsed; tests/test_sweeps.py runs
  real sweeps): sweep files shown in the docs as YAML blocks whose first line is ``# NAME.yaml`` are written
  into the workspace first. ``iclab compare sweeps/NAME`` reads a tiny real sweep.

Not run: command synopses (``iclab eval RUN_DIR [--shift NAME] ...``).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TINY = [
    "train.steps=6",
    "train.batch_size=8",
    "train.eval_every=0",
    "train.checkpoint_every=3",
    "eval.n_prompts=32",
    "train.threads=1",
    "train.device=cpu",
]
RUN_PLACEHOLDERS = (
    "RUN_DIR",
    "RUN",
    "runs/demo",
    "DIGITS_RUN",
    "runs/akyurek2024_regbench",
    "runs/friedman2023_sort_program",
    "runs/he2022_base",
)
PATTENTION_PLACEHOLDERS = ("runs/wang2024_tokenformer16",)  # iclab grow's examples: a tiny Pattention run
FOURIER_PLACEHOLDERS = ("runs/fourier",)  # the spectrum instrument's example: a tiny Fourier-series run
EXPLANATIONS_PLACEHOLDERS = ("runs/expl_e",)  # the explanations curriculum: a tiny run reading explanations
POSITIONS_PLACEHOLDERS = ("runs/positions",)  # position prediction's fine-tuning: a tiny pretext run


def code_blocks(path: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w*)\n(.*?)```", path.read_text(), flags=re.S)]


def commands() -> list[tuple[str, str, str | None]]:
    """``(doc, command, expected error line or None)`` for every runnable ``iclab`` command in the docs."""
    out = []
    for path in DOCS:
        if path.name == "registry.md":
            continue
        text = path.read_text()
        for _lang, block in code_blocks(path):
            lines = block.splitlines()
            for i, line in enumerate(lines):
                cmd = line.removeprefix("$ ").split("#")[0].strip()
                if "iclab " not in cmd:
                    continue
                for part in cmd.split("&&"):
                    part = part.strip()
                    if part.startswith("iclab "):
                        expected = (
                            lines[i + 1]
                            if line.startswith("$ ") and i + 1 < len(lines) and lines[i + 1].startswith("iclab: error:")
                            else None
                        )
                        out.append((path.name, part, expected))
        for span in re.findall(r"(?<!`)`(iclab [^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S)):
            out.append((path.name, span, None))
    runnable = []
    for doc, cmd, expected in out:
        cmd = cmd.split(" > ")[0]  # `iclab list --markdown > docs/registry.md`: the command, not the redirection
        if any(s in cmd for s in ("[", "...", "|", "COMMAND", "NAME", "CONFIG", "my_ext.py", "toy", "SPEC")):
            continue  # a synopsis or an extension example (tests/test_architecture.py runs those)
        if len(cmd.split()) == 2 and cmd.split()[1] in (
            "train",
            "eval",
            "analyze",
            "report",
            "sweep",
            "compare",
            "decompile",
            "finetune",
            "prune",
            "grow",
        ):
            continue  # the command's name in a sentence, not an example
        runnable.append((doc, cmd, expected))
    return list(dict.fromkeys(runnable))


COMMANDS = commands()


def benchmark_commands() -> list[tuple[str, str]]:
    """``(doc, command)`` for every ``python benchmarks/...`` command in the docs."""
    out = []
    for path in DOCS:
        text = path.read_text()
        found = [line.split("#")[0] for _lang, block in code_blocks(path) for line in block.splitlines()]
        found += re.findall(r"(?<!`)`([^`]*python benchmarks/[^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
        for line in found:
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("python benchmarks/") and "[" not in part and "..." not in part:
                    out.append((path.name, part))
    return list(dict.fromkeys(out))


BENCHMARKS = benchmark_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A copy of configs/ and tiny trained runs that the placeholders point at: linear regression, the
    representation task for the commands that probe Phi, and REGBENCH for the token commands."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "configs", root / "configs")
    shutil.copytree(ROOT / "benchmarks", root / "benchmarks")
    (root / "docs").mkdir()  # benchmarks that draw a figure for the docs draw it here
    env = {**os.environ, "MPLBACKEND": "Agg"}
    tiny = [x for s in TINY for x in ("--set", s)]
    sets = tiny + [x for s in ["model.n_layer=4", "model.n_embd=16", "model.n_head=2"] for x in ("--set", s)]
    program = ["task.name=rasp", "task.program=hist", "task.n_train=100", "model.name=transformer_program"]
    program += ["model.n_layer=1", "model.d_mlp=8"]  # for iclab decompile and the circuit instrument
    for name, arguments in (
        ("tiny_run", sets),
        ("tiny_repr", [*sets, "--set", "task.name=representation", "--set", "model.n_positions=null"]),
        (
            "tiny_tokens",
            [*sets]
            + ["--set", "task.name=regbench", "--set", "task.n_train=16", "--set", "task.max_length=48"]
            + ["--set", "model.n_positions=null"],
        ),
        ("tiny_program", tiny + [x for s in program for x in ("--set", s)]),
        ("tiny_pattention", [*sets, "--set", "model.linear=pattention", "--set", "model.param_tokens=8"]),
        (
            "tiny_fourier",
            [*sets, "--set", "task.name=fourier_series", "--set", "task.n_dims=1", "--set", "task.n_points=9"]
            + ["--set", "model.n_positions=null"],
        ),
        (
            "tiny_explanations",
            [*sets, "--set", "task.name=explanations", "--set", "task.context=e", "--set", "task.n_demos=1"]
            + ["--set", "task.n_tasks=20", "--set", "task.max_int=20", "--set", "model.n_positions=64"],
        ),
        ("tiny_positions", ["--recipe", "zhai2022_positions", *tiny]),
    ):
        config = [] if arguments[0] == "--recipe" else ["configs/linear_regression.yaml"]
        out = subprocess.run(
            [sys.executable, "-m", "iclab", "train", *config, "--out", name, *arguments],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
    for path in DOCS:  # sweep files the docs show: YAML blocks that open with `# NAME.yaml`
        for lang, block in code_blocks(path):
            first = block.splitlines()[0] if block.strip() else ""
            if lang == "yaml" and re.fullmatch(r"# [\w/.-]+\.yaml", first.strip()):
                target = root / first[2:].strip()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block)
    import yaml

    (root / "tiny_sweep.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny_sweep",
                "grid": {"task.pool_size": [1, 4]},
                "config": {
                    "task": {"name": "task_pool", "n_dims": 4, "n_points": 16},
                    "model": {"n_layer": 1, "n_embd": 16, "n_head": 2},
                    "train": {"steps": 6, "batch_size": 8, "eval_every": 0, "device": "cpu"},
                    "eval": {"n_prompts": 32},
                },
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "iclab", "sweep", "tiny_sweep.yaml"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return root


def test_the_docs_have_commands():
    assert len(COMMANDS) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("doc, command, expected", COMMANDS, ids=[f"{d}: {c}"[:90] for d, c, _ in COMMANDS])
def test_every_iclab_command_in_the_docs_runs(doc, command, expected, workspace, tmp_path):
    argv = shlex.split(command)[1:]
    run = tmp_path / "run"
    if argv[0] == "sweep":
        argv.append("--dry-run")
    elif argv[0] == "compare":
        argv = [str(workspace / "sweeps" / "tiny_sweep") if a.startswith("sweeps/") else a for a in argv]
        argv += ["--out", str(tmp_path / "compare")]
    elif argv[0] == "train" and "--resume" not in argv or argv[0] == "demo":
        argv = [a for a in argv if a != "--overwrite"]
        if "--out" in argv:
            argv[argv.index("--out") + 1] = str(run)
        else:
            argv += ["--out", str(run)]
        argv += [x for s in TINY for x in ("--set", s)]  # later --set values win
    else:  # a command on an existing run: the placeholders name a tiny trained copy
        source = "tiny_repr" if "phi" in command else "tiny_tokens" if "regbench" in command else "tiny_run"
        source = "tiny_program" if any(w in command for w in ("decompile", "program", "circuit")) else source
        source = "tiny_pattention" if any(p in argv for p in PATTENTION_PLACEHOLDERS) else source
        source = "tiny_fourier" if any(p in argv for p in FOURIER_PLACEHOLDERS) else source
        source = "tiny_explanations" if any(p in argv for p in EXPLANATIONS_PLACEHOLDERS) else source
        source = "tiny_positions" if any(p in argv for p in POSITIONS_PLACEHOLDERS) else source
        shutil.copytree(workspace / source, run)
        placeholders = RUN_PLACEHOLDERS + PATTENTION_PLACEHOLDERS + FOURIER_PLACEHOLDERS + EXPLANATIONS_PLACEHOLDERS
        placeholders += POSITIONS_PLACEHOLDERS
        argv = [str(run) if a in placeholders or a.startswith("/tmp/iclab-") else a for a in argv]
        if argv[0] in ("finetune", "prune", "grow"):  # a new run folder beside the copy, trained at tiny sizes
            argv += ["--out", str(tmp_path / "changed")]
            argv += [x for s in TINY for x in ("--set", s)] if argv[0] != "prune" else []
        if argv[0] == "train":
            argv += ["--set", "train.steps=9"]
        if argv[0] == "analyze":
            argv += ["--prompts", "16", "--paste-steps", "2"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-m", "iclab", *argv], capture_output=True, text=True, cwd=workspace, env=env, timeout=600
    )
    if expected is not None:
        assert out.returncode == 2 and out.stderr.strip() == expected, out.stderr
    else:
        assert out.returncode == 0, f"{command}\n{out.stderr}"


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path):
    blocks = [code for lang, code in code_blocks(ROOT / "README.md") if lang == "python"]
    assert len(blocks) >= 3
    script = "\n".join(blocks).replace('overrides=["train.steps=1000"]', f"overrides={TINY!r}")
    assert script != "\n".join(blocks), "the README's training override changed: update this test's substitution"
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "example.py").write_text(script)
    out = subprocess.run(
        [sys.executable, "example.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "runs" / "lr" / "report.html").is_file()


def test_the_docs_have_benchmark_commands():
    assert len(BENCHMARKS) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("doc, command", BENCHMARKS, ids=[f"{d}: {c}"[:90] for d, c in BENCHMARKS])
def test_every_benchmark_command_in_the_docs_runs_in_smoke_mode(doc, command, workspace, tmp_path):
    argv = shlex.split(command)[1:]
    run = tmp_path / "run"
    if any(a in RUN_PLACEHOLDERS for a in argv):
        shutil.copytree(workspace / "tiny_run", run)
        argv = [str(run) if a in RUN_PLACEHOLDERS else a for a in argv]
    argv = ["stacked" if a == "NAME" else a for a in argv]
    env = {**os.environ, "MPLBACKEND": "Agg", "ICLAB_BENCH_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, *argv, "--smoke"], capture_output=True, text=True, cwd=workspace, env=env, timeout=600
    )
    assert out.returncode == 0, f"{command}\n{out.stderr[-3000:]}"
