"""What is registered, as tables: ``iclab list`` prints them, ``iclab list --markdown`` writes
``docs/registry.md`` (a test checks that file is current). Everything here is read from the registries, so
a registered extension is listed like a built-in."""

from __future__ import annotations

import dataclasses
import inspect


def first_line(obj) -> str:
    doc = inspect.getdoc(obj)
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def _default(f) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return repr(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
    return "?"


def _fields(config_cls, skip=("name",)) -> str:
    return ", ".join(f"{f.name}={_default(f)}" for f in dataclasses.fields(config_cls) if f.name not in skip)


def _params(fn, skip) -> str:
    return ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(fn).parameters.values() if p.name not in skip)


def tables() -> list[tuple[str, list[str], list[list[str]]]]:
    """``[(title, header, rows)]`` for every registry."""
    from iclab.analysis import INSTRUMENTS
    from iclab.kinds import KINDS
    from iclab.learners import LEARNERS
    from iclab.models import ENCODERS, MODELS
    from iclab.models.memory_rules import RULES
    from iclab.recipes import RECIPES
    from iclab.sweeps import LIBRARY
    from iclab.tasks import SHIFTS, TASKS

    out = []
    rows = []
    for name in sorted(TASKS):
        cls = TASKS[name]
        task = cls(cls.Config())
        rows.append(
            [name, first_line(cls), ", ".join(task.relevant_learners()), _fields(cls.Config, ("name", "curriculum"))]
        )
    out.append(
        (
            "Tasks (`task.name`)",
            ["task", "what", "reference learners (Bayes-optimal first where known)", "fields and defaults"],
            rows,
        )
    )
    rows = []
    for name in sorted(TASKS):
        cls = TASKS[name]
        task = cls(cls.Config())
        can = task.applicable()
        analyses = [
            n for n, ins in INSTRUMENTS.items() if ins.task_unsupported is None or ins.task_unsupported(task) is None
        ]
        rows.append(
            [
                name,
                ", ".join(can["shifts"]),
                ", ".join(can["probe targets"]) or "none",
                ", ".join(analyses),
                ", ".join(sorted(can["learners"])),
            ]
        )
    out.append(
        (
            "What applies to each task (with its default fields)",
            ["task", "shifts", "probe targets", "analyses", "learners"],
            rows,
        )
    )
    out.append(
        (
            "Prompt kinds (a task's `prompt_kind`)",
            ["kind", "prompts", "tasks"],
            [
                [name, cls.description, ", ".join(t for t in sorted(TASKS) if TASKS[t].prompt_kind == name)]
                for name, cls in KINDS.items()
            ],
        )
    )
    rows = [
        [name, first_line(MODELS[name]), ", ".join(MODELS[name].encoders), _fields(MODELS[name], ("name", "encoder"))]
        for name in sorted(MODELS)
    ]
    out.append(("Model families (`model.name`)", ["model", "what", "encoders", "fields and defaults"], rows))
    out.append(
        (
            "Prompt encoders (`model.encoder`)",
            ["encoder", "what"],
            [[name, first_line(cls)] for name, cls in ENCODERS.items()],
        )
    )
    out.append(
        (
            "Memory write rules (`model.rule` of `memory`)",
            ["rule", "forms", "what"],
            [
                [name, "recurrent, parallel" if r.parallel else "recurrent", first_line(r.write)]
                for name, r in RULES.items()
            ],
        )
    )
    out.append(
        (
            "Reference learners (`eval.learners`, `--learner`)",
            ["learner", "parameters", "what"],
            [
                [name, _params(LEARNERS[name].__init__, ("self", "task")), first_line(LEARNERS[name])]
                for name in sorted(LEARNERS)
            ],
        )
    )
    out.append(
        (
            "Distribution shifts (`eval.shifts`, `--shift`)",
            ["shift", "parameters", "what"],
            [[name, _params(fn, ("task", "n_prompts", "seed")), first_line(fn)] for name, fn in SHIFTS.items()],
        )
    )
    out.append(
        (
            "Analysis instruments (`iclab analyze --only`)",
            ["instrument", "what"],
            [[name, first_line(ins.run)] for name, ins in INSTRUMENTS.items()],
        )
    )
    out.append(
        (
            "Recipes (`iclab train --recipe`)",
            ["recipe", "what"],
            [[name, first_line(fn)] for name, fn in RECIPES.items()],
        )
    )
    out.append(
        (
            "Sweeps shipped with iclab (`iclab sweep NAME`)",
            ["sweep", "what"],
            [[path.stem, _sweep_summary(path)] for path in sorted(LIBRARY.glob("*.yaml"))],
        )
    )
    return out


def _sweep_summary(path) -> str:
    """The first sentence of a shipped sweep file's leading comment."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(lines)
    return text.split(": ", 1)[0] if ": " in text else text


def as_text() -> str:
    lines = []
    for title, header, rows in tables():
        lines.append(title.replace("`", "") + ":")
        for row in rows:
            name, *rest = row
            if header[1] == "parameters":  # learners and shifts read as calls: ridge(lam=1.0)
                name, rest = (f"{name}({rest[0]})" if rest[0] else name), rest[1:]
            lines.append(f"  {name:<28} {' | '.join(r for r in rest if r)}")
    return "\n".join(lines) + "\n"


def as_markdown() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|") or " "

    parts = [
        "# Registry\n",
        "Everything iclab has registered, generated from the registries by `iclab list --markdown > docs/registry.md`\n"
        "(a test fails when this file is out of date). `docs/extending.md` says how to add to any of them.\n",
    ]
    for title, header, rows in tables():
        parts.append(f"## {title}\n")
        parts.append("| " + " | ".join(header) + " |")
        parts.append("|" + "---|" * len(header))
        parts.extend(
            "| " + " | ".join(f"`{cell(r[0])}`" if i == 0 else cell(c) for i, c in enumerate(r)) + " |" for r in rows
        )
        parts.append("")
    return "\n".join(parts)
