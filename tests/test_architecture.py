"""The shape of the house: no import cycles between packages, configs read without torch, and a new task,
learner, model family and analysis instrument added from one module without touching any other file."""

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import iclab

SRC = Path(iclab.__file__).parent


def _unit(module: str) -> str:
    """``iclab.tasks.linear`` -> ``tasks`` (a package or a top-level module of iclab)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "iclab"


def import_graph() -> dict[str, set[str]]:
    """Edges between iclab's packages and top-level modules, from every import statement (function-level
    imports included: a cycle through a lazy import is still a cycle)."""
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        src = _unit(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.ImportFrom):  # relative imports stay inside the package
                targets = []
            else:
                continue
            for target in targets:
                if target.startswith("iclab.") and _unit(target) != src:
                    edges.setdefault(src, set()).add(_unit(target))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt] if nxt in path else path + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle_between_packages():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_schema_imports_nothing_of_iclab_but_its_errors():
    tree = ast.parse((SRC / "schema.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in imported if m.startswith("iclab")} == {"iclab.errors"}


def test_help_does_not_import_torch_or_matplotlib():
    """``iclab --help`` and ``iclab COMMAND --help`` answer at once: the command line imports torch and matplotlib
    only inside the commands that need them. (Reading a config imports torch: each model family keeps its config
    in its own file, beside its modules.)"""
    code = textwrap.dedent("""
        import sys
        from iclab.cli import main
        for argv in (["--help"], ["train", "--help"], ["sweep", "--help"]):
            try:
                main(argv)
            except SystemExit:
                pass
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "matplotlib"))
        print(len(heavy), heavy[:3])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1].startswith("0 []"), out.stdout


def test_registries_name_things_once_and_refuse_a_taken_name():
    from iclab.learners import LEARNERS
    from iclab.models import MODELS
    from iclab.registry import Registry
    from iclab.tasks import TASKS

    for name, cls in TASKS.items():
        assert cls.name == name == cls.Config().name
    for name, cls in MODELS.items():
        assert cls().name == name
    for name, cls in LEARNERS.items():
        assert cls.name == name
    reg = Registry("thing")

    @reg.register
    class A:
        name = "a"

    class B:
        name = "a"

    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        reg.register(B)
    reg.register(A)  # the same object again is fine (a module imported twice)


def extension_from_the_guide() -> str:
    """The Python blocks of docs/extending.md, in order: the guide's example file, run as it is written."""
    guide = (Path(__file__).parents[1] / "docs" / "extending.md").read_text()
    return "\n\n".join(re.findall(r"```python\n(.*?)```", guide, flags=re.S))


@pytest.fixture
def toy_module(tmp_path):
    path = tmp_path / "my_ext.py"
    path.write_text(extension_from_the_guide())
    yield path
    from iclab.analysis import INSTRUMENTS
    from iclab.learners import LEARNERS
    from iclab.models import MODELS
    from iclab.models.memory_rules import RULES
    from iclab.recipes import RECIPES
    from iclab.tasks import SHIFTS, TASKS

    for registry, names in (
        (TASKS, ["toy_offset", "toy_copy"]),
        (LEARNERS, ["toy_mean", "toy_copy_back"]),
        (SHIFTS, ["toy_flip"]),
        (RULES, ["toy_half"]),
    ):
        for name in names:
            registry.unregister(name)
    MODELS.unregister("toy_mixer")
    INSTRUMENTS.unregister("toy_norms")
    RECIPES.unregister("toy_offset_demo")


TOY_RUN = [
    "task.name=toy_offset",
    "model.name=toy_mixer",
    "model.n_layer=2",
    "train.steps=150",
    "train.batch_size=32",
    "train.lr=3e-3",
    "train.warmup_steps=10",
    "train.device=cpu",
    "train.eval_every=0",
    "train.checkpoint_every=100",
    "eval.n_prompts=256",
]


@pytest.mark.slow
def test_a_family_task_learner_and_instrument_from_one_module(toy_module, tmp_path):
    """Public API: the config names the module, everything else is iclab's as it is."""
    from iclab import evaluate_run, load_config, train, write_report
    from iclab.analysis import analyze_run
    from iclab.evaluate import error_at

    cfg = load_config(None, [f"imports=[{toy_module}]", *TOY_RUN])
    assert cfg.model.label() == "toy_mixer 2x32"
    train(cfg, tmp_path / "api", progress_bar=False)
    rows = evaluate_run(tmp_path / "api")
    # closed form: at k examples the posterior variance of c is 1 / (1 + k / noise^2), the predictive error
    # noise^2 plus that, divided by the error scale 1 + noise^2
    bayes = (0.25 + 1 / (1 + 6 / 0.25)) / 1.25
    assert abs(error_at(rows, "toy_mean(lam=0.25)", 6) - bayes) < 0.05
    assert error_at(rows, "posterior_mean", 6) == pytest.approx(error_at(rows, "toy_mean(lam=0.25)", 6), abs=1e-9)
    assert error_at(rows, "model", 6) < 0.7 * error_at(rows, "zero", 6)
    summary = analyze_run(tmp_path / "api", instruments=["toy_norms"], n_prompts=32, log=lambda s: None)
    assert summary["ran"] == ["toy_norms"]
    page = write_report(tmp_path / "api").read_text()
    assert "toy_mixer 2x32" in page and "Toy: prediction norms" in page and "toy_mean" in page
    from iclab.recipes import RECIPES

    assert RECIPES["toy_offset_demo"]().model.name == "toy_mixer"


def test_the_guide_s_token_task_learner_shift_and_rule(toy_module, tmp_path):
    """The guide's token task, scored by its exact learner through the token kind's evaluation; its shift and its
    memory rule."""
    import torch

    from iclab import load_config, make_learner, make_task
    from iclab.kinds.tokens.metrics import token_metrics
    from iclab.models import build_model
    from iclab.models.memory_rules import RULES

    cfg = load_config(None, [f"imports=[{toy_module}]", "task.name=toy_copy", "model.n_layer=1"])
    task = make_task(cfg.task)
    prompts = task.eval_prompts(64, seed=0)
    acc = token_metrics(make_learner("toy_copy_back").predict(prompts), prompts)["accuracy"]
    assert acc[prompts.scored].mean().item() == 1.0  # exact on every copied letter
    bigram = token_metrics(make_learner("ngram(n=2)").predict(prompts), prompts)["accuracy"]
    assert bigram[prompts.scored].mean().item() < 1.0

    from iclab.tasks import apply_shift

    lin = make_task(load_config(None, [f"imports=[{toy_module}]"]).task)
    base = lin.eval_prompts(200, seed=5)
    ((_, flipped),) = apply_shift("toy_flip(p=1.0)", lin, 200, 5)  # every sign flipped: y = w.x flips too
    assert torch.allclose(flipped.xs, -base.xs) and torch.allclose(flipped.ys, -base.ys, atol=1e-5)

    from iclab.models.memory_rules import Gates, recurrent

    q, k, v = torch.randn(3, 2, 2, 5, 4).unbind(0)  # (B, H, T, D) each
    gates = Gates(beta=torch.rand(2, 2, 5))
    half = recurrent(RULES["toy_half"].write, q, k, v, gates)
    assert torch.allclose(half, 0.5 * recurrent(RULES["linear"].write, q, k, v, gates), atol=1e-6)
    cfg = load_config(
        None,
        [
            f"imports=[{toy_module}]",
            "model.name=memory",
            "model.rule=toy_half",
            "model.form=recurrent",
            "task.n_dims=3",
            "task.n_points=6",
        ],
    )
    assert torch.isfinite(build_model(cfg.model, 3).predict(make_task(cfg.task).eval_prompts(4, seed=0))).all()


def test_the_guide_s_posterior_is_the_exact_one(toy_module):
    """The guide's task posterior against scipy: y_1..y_n ~ N(0, s^2 I + 1 1^T) jointly."""
    import numpy as np
    from scipy.stats import multivariate_normal

    from iclab import load_config, make_task

    task = make_task(
        load_config(None, [f"imports=[{toy_module}]", "task.name=toy_offset", "model.name=toy_mixer"]).task
    )
    p = task.eval_prompts(4, seed=0)
    pred, log_ev = task.posterior(p.xs.double(), p.ys.double())
    for b in range(4):
        y = p.ys[b].double().numpy()
        for i in range(1, len(y)):
            cov = 0.25 * np.eye(i + 1) + 1.0
            # the conditional mean of y_i given y_<i, and the marginal density of y_<i
            mean = cov[i, :i] @ np.linalg.solve(cov[:i, :i], y[:i])
            assert pred[b, i].item() == pytest.approx(mean, abs=1e-10)
            assert log_ev[b, i].item() == pytest.approx(
                multivariate_normal(np.zeros(i), cov[:i, :i]).logpdf(y[:i]), abs=1e-9
            )


@pytest.mark.slow
def test_the_cli_runs_an_extension_named_in_the_config(toy_module, tmp_path):
    """Command line: `imports` in the config (a .py file here; a module name works too), then train, eval,
    analyze and report on the run folder in fresh processes, which import the module from the saved config."""
    run = tmp_path / "cli"

    def iclab(*args):
        return subprocess.run([sys.executable, "-m", "iclab", *args], capture_output=True, text=True, cwd=tmp_path)

    config = tmp_path / "toy.yaml"
    config.write_text(f"imports: [{toy_module}]\ntask: {{name: toy_offset}}\nmodel: {{name: toy_mixer}}\n")
    sets = [x for s in TOY_RUN for x in ("--set", s)]
    out = iclab("train", str(config), "--out", str(run), *sets)
    assert out.returncode == 0, out.stderr
    assert "toy_mixer 2x32" in out.stdout and "toy_mean" in out.stdout
    out = iclab("eval", str(run), "--learner", "toy_mean(lam=0.3)", "--prompts", "64")
    assert out.returncode == 0, out.stderr
    out = iclab("analyze", str(run), "--only", "toy_norms", "--prompts", "16")
    assert out.returncode == 0, out.stderr
    assert (run / "analysis" / "toy_norms.csv").is_file()
    assert iclab("report", str(run)).returncode == 0
    saved = (run / "config.yaml").read_text()
    assert str(toy_module) in saved
    out = iclab(
        "--import",
        str(toy_module),
        "train",
        "--recipe",
        "toy_offset_demo",
        "--out",
        str(tmp_path / "recipe"),
        "--set",
        "train.steps=20",
        "--set",
        "eval.n_prompts=32",
    )
    assert out.returncode == 0, out.stderr
    bad = iclab("train", str(config), "--out", str(tmp_path / "bad"), "--set", "imports=[no_such_module_here]")
    assert bad.returncode == 2 and "imports[0]: cannot import 'no_such_module_here'" in bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "bad").exists()
    json.loads((run / "analysis" / "summary.json").read_text())


def test_the_registry_doc_is_current():
    """docs/registry.md is generated from the registries; regenerate it after adding anything."""
    from iclab.listing import as_markdown

    doc = Path(__file__).parents[1] / "docs" / "registry.md"
    assert doc.read_text() == as_markdown(), "run: iclab list --markdown > docs/registry.md"
