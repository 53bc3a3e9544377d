"""The ``iclab`` command line. Heavy imports (torch, matplotlib) happen inside the commands, so
``iclab --help`` answers at once.

    iclab demo [--out DIR]
    iclab train CONFIG.yaml [--set key=value ...] [--resume] [--out DIR]
    iclab eval RUN_DIR [--shift NAME ...] [--learner SPEC ...]
    iclab report RUN_DIR
    iclab finetune RUN_DIR --method METHOD [--set key=value ...] [--out DIR]
    iclab grow RUN_DIR --param-tokens N [--set key=value ...] [--out DIR]
    iclab prune RUN_DIR --method optin|magnitude|random --keep FRACTION [--out DIR]
    iclab sweep SWEEP.yaml [--dry-run] [--executor local|slurm] [--jobs N] [--threads N]
    iclab compare SWEEP_OR_RUN_DIR ... [--x KEY] [--by KEY] [--panel KEY] [--metric NAME] [--k K] [--out DIR]
    iclab list

Bad input prints one line, ``iclab: error: ...``, and exits with code 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported like every other bad input: one line, exit code 2
    (``iclab COMMAND --help`` shows the usage)."""

    def error(self, message: str):
        command = self.prog.removeprefix("iclab").strip()
        self.exit(2, f"iclab: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="iclab",
        description="Train small sequence models on in-context learning "
        "tasks and compare them with the learning algorithms they might implement.",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module or .py file that registers extra tasks, models, learners, instruments or recipes "
        "(repeatable; a config's `imports:` does the same for its runs)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="train, evaluate and report on linear regression (d=5) in a few CPU minutes")
    d.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    d.add_argument("--overwrite", action="store_true", help="replace an existing run folder")

    t = sub.add_parser("train", help="train a model from a YAML config (then evaluate and report)")
    t.add_argument("config", nargs="?", help="YAML config file (optional with --resume or --recipe)")
    t.add_argument(
        "--recipe",
        help="start from a named recipe instead of a file (see `iclab list`), with its arguments as a call: "
        "'icl2024_task(task=vector_retrieval)'",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.steps=2000 (repeatable)",
    )
    t.add_argument("--out", help="run folder (default: runs/<name>)")
    t.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")

    e = sub.add_parser("eval", help="error-vs-k curves of a trained run and its reference learners")
    e.add_argument("run_dir")
    e.add_argument("--shift", action="append", help="distribution shift to evaluate on (repeatable)")
    e.add_argument("--learner", action="append", help="reference learner spec, e.g. 'ridge(lam=0.1)' (repeatable)")
    e.add_argument("--prompts", type=int, help="number of held-out prompts (default: the config's eval.n_prompts)")
    e.add_argument("--device", help="cpu, cuda, ... (default: the run's train.device)")

    r = sub.add_parser("report", help="write RUN_DIR/report.html from the run's files")
    r.add_argument("run_dir")

    dc = sub.add_parser(
        "decompile", help="write a trained transformer_program run as Python: RUN_DIR/program/program.py"
    )
    dc.add_argument("run_dir")

    def changer(name: str, what: str, run_help: str, set_help: str, out_default: str) -> argparse.ArgumentParser:
        """A command that changes a finished run into a new run folder: RUN_DIR, --set and --out."""
        parser = sub.add_parser(name, help=what)
        parser.add_argument("run_dir", help=run_help)
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
        parser.add_argument("--out", help=f"the new run folder (default: next to RUN_DIR, named {out_default})")
        return parser

    ft = changer(
        "finetune",
        "fine-tune a trained run with a parameter-efficient method (He et al. 2022) into a new run folder",
        "the finished run to start from (left unchanged)",
        "override a field (task.name=...)",
        "<run>-<method>",
    )
    ft.add_argument(
        "--method",
        default="full",
        help="full, readout, lora, adapter, parallel_adapter, prefix or mam, with its settings as a call: "
        "'lora(r=4, alpha=8, targets=[qkv, mlp.fc])', 'adapter(bottleneck=8)', 'mam(prefix_length=4, scale=4)'",
    )
    pr = changer(
        "prune",
        "prune attention heads and MLP neurons in one shot, without retraining, into a new run folder",
        "the finished run to prune (left unchanged)",
        "override a field",
        "<run>-<method><keep>",
    )
    pr.add_argument(
        "--method", default="optin", help="optin, magnitude or random (settings as a call: 'optin(kl_weight=2)')"
    )
    pr.add_argument("--keep", type=float, required=True, help="share of the heads' and neurons' FLOPs kept, in (0, 1]")
    g = changer(
        "grow",
        "append parameter tokens (zero keys) to a Pattention network (TokenFormer) and train on in a new run",
        "the finished run to grow (left unchanged; model.linear must be pattention)",
        "override a field (train.steps=...)",
        "<run>-grown",
    )
    g.add_argument("--param-tokens", type=int, required=True, help="parameter tokens to append to every layer")

    a = sub.add_parser(
        "analyze",
        help="probes, alignment metrics, weight recovery, attention, order sensitivity, "
        "pasting, the spectrum of the predicted function: RUN_DIR/analysis/ and the report",
    )
    a.add_argument("run_dir")
    a.add_argument(
        "--only",
        action="append",
        metavar="INSTRUMENT",
        help="an analysis instrument (`iclab list`: probes, alignment, weights, attention, order, paste, ...; "
        "repeatable; default: all that apply)",
    )
    a.add_argument(
        "--hook", action="append", help="hook name or glob pattern to probe (repeatable; default: one per layer)"
    )
    a.add_argument("--target", action="append", help="probe target: w, xty, w_ols, w_ridge, phi (repeatable)")
    a.add_argument("--learner", action="append", help="reference learner spec to align with (repeatable)")
    a.add_argument("--prompts", type=int, default=600, help="held-out prompts (default 600)")
    a.add_argument("--per-position", action="store_true", help="one probe per position k instead of pooling")
    a.add_argument("--paste-steps", type=int, default=300, help="training steps of the pasted embedding")
    a.add_argument("--device", help="cpu, cuda, ... (default: the run's train.device)")
    a.add_argument("--threads", type=int, help="torch CPU threads (default: the run's train.threads)")

    sw = sub.add_parser(
        "sweep",
        help="run a grid of runs from a sweep file (again: skip finished points, resume the rest), then compare them",
    )
    sw.add_argument("sweep", help="a sweep file (YAML), or the name of a sweep shipped with iclab (see `iclab list`)")
    sw.add_argument("--dry-run", action="store_true", help="list the points and their status; run nothing")
    sw.add_argument(
        "--executor",
        choices=["local", "slurm"],
        help="local process pool or SLURM job arrays through "
        "submitit (default: the sweep file's executor.name, else local)",
    )
    sw.add_argument("--jobs", type=int, help="local: runs at once (default: the cores divided by --threads)")
    sw.add_argument("--threads", type=int, help="torch threads per run (default: 1 locally, slurm.cpus_per_task)")
    sw.add_argument("--root", default="sweeps", help="where sweep folders go (default: sweeps/)")

    c = sub.add_parser("compare", help="one table, plots and a report over sweeps and runs")
    c.add_argument("paths", nargs="+", metavar="SWEEP_OR_RUN_DIR")
    c.add_argument("--x", help="swept key on the x-axis (default: the first)")
    c.add_argument("--by", help="one line per value of this key (default: the network and every reference learner)")
    c.add_argument("--panel", help="one panel per value of this key")
    c.add_argument("--metric", help="e.g. error@k=15, error_mean, accuracy, tvd (default: the main metric)")
    c.add_argument("--k", type=int, help="the k of error@k (default: the last k)")
    c.add_argument(
        "--log-x",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log-scale x-axis (default: when the values span a factor of 10)",
    )
    c.add_argument(
        "--out",
        help="folder for compare.csv, plots/ and report.html (default: the sweep folder when "
        "comparing one sweep, else compare/)",
    )

    ls = sub.add_parser(
        "list",
        help="registered tasks, models, encoders, memory rules, learners, shifts, analysis instruments and recipes",
    )
    ls.add_argument("--markdown", action="store_true", help="as Markdown tables (docs/registry.md)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    from iclab.errors import TrainingError, UserError

    try:
        if args.imports:
            from iclab.config import import_extensions

            import_extensions(args.imports, "--import")
        return {
            "demo": cmd_demo,
            "train": cmd_train,
            "eval": cmd_eval,
            "report": cmd_report,
            "decompile": cmd_decompile,
            "finetune": cmd_finetune,
            "grow": cmd_grow,
            "prune": cmd_prune,
            "analyze": cmd_analyze,
            "sweep": cmd_sweep,
            "compare": cmd_compare,
            "list": cmd_list,
        }[args.command](args)
    except UserError as e:
        print(f"iclab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `iclab list | head`: the reader has gone; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.filename is None:  # not a file-system failure of a path: a bug, keep the traceback
            raise
        # the disk said no (permission, full, read-only, missing folder): one line naming the path
        print(f"iclab: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except TrainingError as e:
        print(f"iclab: training stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("iclab: interrupted", file=sys.stderr)
        return 130


def _check_run(cfg) -> None:
    """Everything about a run that can fail, checked before anything on disk changes: the device, and whether
    a training step fits in its memory (shifts, learners and sizes were checked when the config was read)."""
    from iclab.training.device_memory import check_fits
    from iclab.utils import resolve_device

    check_fits(cfg, resolve_device(cfg.train.device))


def _train_evaluate_report(cfg, run_dir: Path, resume: bool, replaced: Path | None = None, ctx=None) -> int:
    """Train, then evaluate and report. Under torchrun (``ctx``) every rank trains and rank 0 alone does the rest."""
    from iclab.rundir import discard_replaced, restore_replaced
    from iclab.training.distributed import finish
    from iclab.training.loop import train

    t0 = time.perf_counter()
    new_folder = not run_dir.exists() or not any(run_dir.iterdir())
    if ctx is not None and not ctx.main:
        train(cfg, run_dir, resume=resume)
        finish(ctx)
        return 0
    try:
        # a run replaced by --overwrite is deleted only once the new one has its first checkpoint
        result = train(cfg, run_dir, resume=resume, on_checkpoint=lambda path: discard_replaced(replaced))
    except BaseException:
        from iclab.training.checkpoint import list_checkpoints

        if replaced is not None and replaced.exists():
            restore_replaced(run_dir, replaced)
            print(f"iclab: the new run did not start; {run_dir} holds the previous run again", file=sys.stderr)
        elif new_folder and not resume and run_dir.is_dir() and not list_checkpoints(run_dir):
            shutil.rmtree(run_dir)  # a run that failed before its first checkpoint leaves no half-made folder
        raise
    finish(ctx)
    if result.status == "interrupted":
        return 0
    print(f"trained {result.step} steps; checkpoint {result.checkpoint}", file=sys.stderr)
    _evaluate_and_report(cfg, run_dir, t0)
    return 0


def _evaluate_and_report(cfg, run_dir: Path, t0: float) -> None:
    """After training (or pruning): evaluate, write the report and print the summary, unless eval.after_train is
    off."""
    from iclab.evaluate import evaluate_run
    from iclab.report import write_report

    if cfg.eval.after_train:
        rows = evaluate_run(run_dir)
        report = write_report(run_dir)
        _print_summary(rows, cfg, run_dir)
        print(f"report: {report}  ({time.perf_counter() - t0:.0f} s)")


def _print_summary(rows: list[dict], cfg, run_dir: Path) -> None:
    """What the run's prompt kind shows after evaluation (:meth:`iclab.kinds.PromptKind.summary_lines`)."""
    from iclab.kinds import kind_of_config

    lines, warnings = kind_of_config(cfg.task).summary_lines(rows, cfg, run_dir)
    for line in lines:
        print(line)
    for line in warnings:
        print(f"iclab: warning: {line}", file=sys.stderr)


def cmd_demo(args) -> int:
    from iclab.config import (
        apply_overrides,
        release_fitted_positions,
        run_config_from_dict,
        to_dict,
    )
    from iclab.recipes import demo
    from iclab.rundir import prepare_new_run

    cfg = run_config_from_dict(
        apply_overrides(release_fitted_positions(to_dict(demo()), _set_keys(args.set)), args.set)
    )
    run_dir = Path(args.out)
    _check_run(cfg)
    replaced = prepare_new_run(run_dir, args.overwrite, cfg)
    print(
        f"iclab demo: training a {cfg.model.label()} on {cfg.task.name} (d={cfg.task.n_dims}, "
        f"{cfg.task.n_points} points) for {cfg.train.steps} steps; writing {run_dir}",
        file=sys.stderr,
    )
    return _train_evaluate_report(cfg, run_dir, resume=False, replaced=replaced)


def cmd_train(args) -> int:
    from iclab.config import (
        apply_overrides,
        load_config,
        read_yaml,
        release_fitted_positions,
        run_config_from_dict,
        to_dict,
    )
    from iclab.errors import UserError

    if args.config and args.recipe:
        raise UserError("give a CONFIG file or --recipe, not both")
    if args.config:
        cfg = load_config(args.config, args.set)
    elif args.recipe:
        from iclab.recipes import RECIPES
        from iclab.schema import parse_call

        name, kwargs = parse_call(args.recipe, "--recipe")  # a name, or a call with the recipe's arguments
        if name not in RECIPES:
            raise UserError(f"--recipe: unknown recipe {name!r}; available: {', '.join(RECIPES)}")
        _check_recipe_arguments(name, RECIPES[name], kwargs)
        try:
            made = RECIPES[name](**kwargs)
        except TypeError as e:
            raise UserError(f"--recipe: {e}") from None
        base = release_fitted_positions(to_dict(made), _set_keys(args.set))
        cfg = run_config_from_dict(apply_overrides(base, args.set))
    elif args.resume and args.out:
        from iclab.rundir import read_run_config

        read_run_config(Path(args.out))  # clear error when the folder is not a run
        cfg = run_config_from_dict(apply_overrides(read_yaml(Path(args.out) / "config.yaml"), args.set))
    else:
        raise UserError("train needs a CONFIG file (or --recipe NAME, or --resume --out RUN_DIR)")
    if args.resume and args.overwrite:
        raise UserError("give --resume or --overwrite, not both")
    run_dir = Path(args.out) if args.out else Path("runs") / cfg.name
    _check_run(cfg)
    from iclab.training.distributed import context, on_main

    ctx = context(cfg.train.device)  # launched by torchrun: data-parallel (rank 0 owns the run folder)
    replaced = None
    if args.resume:
        from iclab.rundir import check_run_location, read_run_config

        check_run_location(run_dir)
        read_run_config(run_dir)
    else:
        from iclab.rundir import prepare_new_run

        replaced = on_main(ctx, lambda: prepare_new_run(run_dir, args.overwrite, cfg))
    return _train_evaluate_report(cfg, run_dir, resume=args.resume, replaced=replaced, ctx=ctx)


def _changed_run(cfg, base_dir: Path, out: str | None, what: str):
    """``(folder, network on the meta device)`` of a run changed from ``base_dir``: ``--out``, else ``<base>-<what>``
    beside it; refuses one that exists (nothing on disk changes) and checks the run can train here."""
    from iclab.errors import RunFolderError
    from iclab.rundir import check_run_location
    from iclab.tasks import make_task
    from iclab.training.start import check_start

    run_dir = Path(out) if out else base_dir.parent / f"{base_dir.name}-{what}"
    check_run_location(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise RunFolderError(f"--out: {run_dir} exists; choose a new folder for the changed run")
    _check_run(cfg)
    return run_dir, check_start(cfg, make_task(cfg.task))


def cmd_finetune(args) -> int:
    from iclab.change import finetune_config

    base_dir = Path(args.run_dir)
    cfg = finetune_config(base_dir, args.method, args.set)
    run_dir, model = _changed_run(cfg, base_dir, args.out, cfg.finetune.method)
    from iclab.models.petl import petl_formula

    count, formula = petl_formula(model, cfg.finetune)  # the count the run will record in start.json
    total = sum(p.numel() for p in model.parameters())
    print(
        f"iclab finetune: {cfg.finetune.method} on {base_dir} -> {cfg.task.name}, {cfg.train.steps} steps, "
        f"{count:,} of {total:,} parameters trained ({formula}); writing {run_dir}",
        file=sys.stderr,
    )
    return _train_evaluate_report(cfg, run_dir, resume=False)


def cmd_prune(args) -> int:
    from iclab.change.prune import prune_config, prune_run

    base_dir = Path(args.run_dir)
    cfg = prune_config(base_dir, args.method, args.keep, args.set)
    run_dir, _ = _changed_run(cfg, base_dir, args.out, f"{cfg.prune.method}{cfg.prune.keep:g}")
    t0 = time.perf_counter()
    print(
        f"iclab prune: {cfg.prune.method} on {base_dir}, keeping {cfg.prune.keep:g}; writing {run_dir}", file=sys.stderr
    )
    try:
        summary = prune_run(cfg, run_dir)
    except BaseException:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # nothing half-made stays behind
        raise
    rho = summary["score_vs_ablation_spearman"]
    print(
        f"kept {summary['heads_kept']}/{summary['heads']} heads, {summary['neurons_kept']}/{summary['neurons']} "
        f"neurons ({summary['kept_flops_share']:.3f} of their FLOPs); score vs single-unit ablation, Spearman: "
        + ", ".join(f"{k}s {v}" for k, v in rho.items()),
        file=sys.stderr,
    )
    _evaluate_and_report(cfg, run_dir, t0)
    return 0


def cmd_grow(args) -> int:
    from iclab.change import grow_config

    base_dir = Path(args.run_dir)
    cfg = grow_config(base_dir, args.param_tokens, args.set)
    run_dir, _ = _changed_run(cfg, base_dir, args.out, "grown")
    print(
        f"iclab grow: {base_dir} to {cfg.model.param_tokens} parameter tokens per layer (normalised at "
        f"{cfg.model.param_scale_tokens}), {cfg.train.steps} steps; writing {run_dir}",
        file=sys.stderr,
    )
    return _train_evaluate_report(cfg, run_dir, resume=False)


def _check_recipe_arguments(name: str, recipe, kwargs: dict) -> None:
    """Refuse, in one line, a recipe argument the recipe does not take or whose value is not of its annotated type
    (``n_embd=W``: a word where a number belongs)."""
    import inspect
    import typing

    from iclab.errors import UserError

    hints = typing.get_type_hints(recipe)
    params = inspect.signature(recipe).parameters
    for key, value in kwargs.items():
        if key not in params:
            raise UserError(f"--recipe: {name} has no argument {key!r}; its arguments: {', '.join(params)}")
        want = hints.get(key)
        ok = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            str: isinstance(value, str),
            bool: isinstance(value, bool),
        }.get(want, True)
        if not ok:
            raise UserError(f"--recipe: {name}'s {key} must be {want.__name__}, got {value!r}")


def _set_keys(overrides: list[str] | None) -> list[str]:
    return [item.partition("=")[0] for item in overrides or []]


def cmd_eval(args) -> int:
    from iclab.errors import UserError
    from iclab.evaluate import evaluate_run
    from iclab.rundir import read_run_config

    if args.prompts is not None and args.prompts < 1:
        raise UserError(f"--prompts: must be a positive integer, got {args.prompts}")
    cfg = read_run_config(Path(args.run_dir))
    if args.learner:
        from iclab.learners import parse_learner_spec

        for spec in args.learner:
            parse_learner_spec(spec, "--learner")
    if args.device:
        from iclab.utils import resolve_device

        resolve_device(args.device, "--device")
    rows = evaluate_run(
        args.run_dir, shifts=args.shift, learners=args.learner, n_prompts=args.prompts, device=args.device
    )
    _print_summary(rows, cfg, Path(args.run_dir))
    print(f"curves: {Path(args.run_dir) / 'eval' / 'curves.csv'}")
    return 0


def cmd_analyze(args) -> int:
    from iclab.analysis import analyze_run
    from iclab.errors import UserError
    from iclab.report import write_report

    if args.paste_steps < 1:
        raise UserError(f"--paste-steps: must be a positive integer, got {args.paste_steps}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: must be a positive integer, got {args.threads}")
    device = None
    if args.device:
        from iclab.utils import resolve_device

        device = resolve_device(args.device, "--device")
    summary = analyze_run(
        args.run_dir,
        instruments=args.only,
        hooks=args.hook,
        targets=args.target,
        learners=args.learner,
        n_prompts=args.prompts,
        per_position=args.per_position,
        paste_steps=args.paste_steps,
        device=device,
        threads=args.threads,
    )
    for name, why in summary["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"analysis: {Path(args.run_dir) / 'analysis'} ({', '.join(summary['ran']) or 'nothing ran'})")
    if (Path(args.run_dir) / "eval" / "curves.csv").is_file():
        print(f"report: {write_report(args.run_dir)}")
    return 0


def cmd_report(args) -> int:
    from iclab.report import write_report

    print(f"report: {write_report(args.run_dir)}")
    return 0


def cmd_decompile(args) -> int:
    from iclab.decompile import check_program, decompile_run

    path = decompile_run(Path(args.run_dir))
    print(f"program: {path}  (run(tokens) predicts; its read-out weights: {path.parent / 'readout.csv'})")
    c = check_program(Path(args.run_dir))
    same = "the program is the model" if c["agree"] == c["positions"] else "MISMATCH: please report it"
    print(
        f"held-out check: the program and the model agree on {c['agree']} of {c['positions']} positions of "
        f"{c['prompts']} held-out inputs ({same}); the program's accuracy {c['accuracy']:.4f}"
    )
    if (Path(args.run_dir) / "eval" / "curves.csv").is_file():
        from iclab.report import write_report

        print(f"report: {write_report(args.run_dir)}")
    return 0


def cmd_sweep(args) -> int:
    from iclab.errors import UserError
    from iclab.sweeps import find_sweep_file, load_sweep, run_sweep

    for flag in ("jobs", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag}: must be a positive integer, got {getattr(args, flag)}")
    sweep = load_sweep(find_sweep_file(args.sweep))
    return run_sweep(
        sweep, root=args.root, executor=args.executor, jobs=args.jobs, threads=args.threads, dry_run=args.dry_run
    )


def cmd_compare(args) -> int:
    from iclab.errors import UserError
    from iclab.sweeps.compare import format_table, write_comparison
    from iclab.sweeps.store import INDEX

    if args.k is not None and args.k < 0:
        raise UserError(f"--k: must be >= 0, got {args.k}")
    paths = [Path(p) for p in args.paths]
    out = (
        Path(args.out)
        if args.out
        else paths[0]
        if len(paths) == 1 and (paths[0] / INDEX).is_file()
        else Path("compare")
    )
    comp, report = write_comparison(
        paths, out, x=args.x, by=args.by, metric=args.metric, k=args.k, log_x=args.log_x, panel=args.panel
    )
    from iclab.sweeps.compare import check_choice

    print(format_table(comp, check_choice(comp, args.x, args.by, args.metric)[2]))
    print(f"table: {out / 'compare.csv'}\nreport: {report}")
    return 0


def cmd_list(args) -> int:
    """Everything registered, read from the registries (so a registered extension shows up too)."""
    from iclab.listing import as_markdown, as_text

    print(as_markdown() if args.markdown else as_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
