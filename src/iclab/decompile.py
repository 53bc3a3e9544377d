"""Decompile a trained Transformer Program (:mod:`iclab.models.program`) into Python.

``iclab decompile RUN`` writes ``RUN/program/program.py`` and ``RUN/program/readout.csv``. The program imports
nothing but the standard library's ``csv`` and ``os``: one function per predicate (query values grouped by the key
value they select: ``if q in {...}: return k == ...``), one per MLP (a lookup table: the most frequent output is
the default, the other outputs list their inputs), the attention primitives (``select_closest``, ``aggregate``,
``select`` and ``numerical_aggregate``) and ``run(tokens)``, which predicts a symbol at every position of a list of
symbols that begins with ``<s>``. The read-out is a table the program loads (``readout.csv``: a row of class
weights per variable value, written as exact decimal expansions of the float32 weights).

**The program is the model.** Its predictions equal the discretised model's (eval mode) token for token: the
predicates and reads are the model's argmax choices; the MLP tables are the model's own float64 tables
(:meth:`~iclab.models.program.CategoricalMLP.table`) over every value their inputs can take; the read-out is summed in
the same order, in float64, and ties go to the first class in both. Numerical variables are counts: a numerical head
over ``ones`` takes values 0 .. n (n the longest input), one over such a count 0 .. n^2, and so on; a numerical MLP's
table covers every value its inputs can take on inputs up to the model's length, the only inputs the program accepts.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import torch

from iclab.errors import UserError

# the attention primitives, as the program defines them (``CAUSAL`` is a module constant of the program)
PRIMITIVES = '''
def _rank(i, j):
    """How query position i orders key position j among its matches: the closest first, the earlier of two at equal
    distance first, i itself last."""
    return float("inf") if i == j else 2 * abs(i - j) - (1 if j < i else 0)


def _keys(i, n):
    return range(i + 1) if CAUSAL else range(n)


def select_closest(keys, queries, predicate):
    """For every query position i: the position of the selected key closest to i (see _rank), 0 (<s>) when no key
    is selected."""
    out = []
    for i, q in enumerate(queries):
        matches = [j for j in _keys(i, len(keys)) if predicate(q, keys[j])]
        out.append(min(matches, key=lambda j: _rank(i, j)) if matches else 0)
    return out


def aggregate(attended, values):
    """The value at each query's attended position."""
    return [values[j] for j in attended]


def select(keys, queries, predicate):
    """For every query position i: every selected key position."""
    return [[j for j in _keys(i, len(keys)) if predicate(q, keys[j])] for i, q in enumerate(queries)]


def numerical_aggregate(selected, values):
    """The sum of the values at each query's selected positions (a count, with ones)."""
    return [sum(values[j] for j in s) for s in selected]
'''

READOUT_LOADER = """

def _readout():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "readout.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {(r[0], r[1]): [float(w) for w in r[2:]] for r in rows[1:]}


READOUT = _readout()
"""


def _param(name: str) -> str:
    """``tokens -> token``, ``positions -> position``, ``attn_0_1 -> attn_0_1_output``."""
    return {"tokens": "token", "positions": "position", "ones": "one"}.get(name, f"{name}_output")


class _Types:
    """What values each variable takes in the program: ``token`` (symbols), ``position`` (0 .. n - 1), ``int``
    (0 .. k - 1, the MLPs' outputs), or a numerical range ``0 .. bound``."""

    def __init__(self, vocab, inputs: list[int], k: int, n_positions: int) -> None:
        self.symbols, self.inputs, self.k, self.n = list(vocab.symbols), inputs, k, n_positions
        self.cat = {"tokens": "token", "positions": "position"}
        self.bound = {"ones": 1}

    def domain(self, name: str) -> list[int]:
        """The value indices variable ``name`` can hold."""
        kind = self.cat[name]
        return self.inputs if kind == "token" else list(range(self.n if kind == "position" else self.k))

    def literal(self, name: str, index: int) -> str:
        return repr(self.symbols[index]) if self.cat[name] == "token" else str(index)

    def reachable(self, name: str, index: int) -> bool:
        return index in self.domain(name)


def _grouped(branches: dict, render_key, default_line: str, indent: str = "    ") -> list[str]:
    lines = []
    for out, keys in branches.items():
        lines.append(f"{indent}if {render_key(keys)}:")
        lines.append(f"{indent}    return {out}")
    lines.append(f"{indent}{default_line}")
    return lines


def _set_literal(items: list[str]) -> str:
    return "{" + ", ".join(items) + "}"


def _predicate_source(m: dict, types: _Types) -> list[str]:
    qn, kn = m["query"], m["key"]
    qp, kp = _param(qn), _param(kn)
    if qp == kp:
        qp, kp = f"q_{qp}", f"k_{kp}"
    fn = ("num_predicate_" if m["kind"] == "num_attn" else "predicate_") + m["name"].split("attn_", 1)[1]
    groups: dict[str, list[str]] = {}
    for q in types.domain(qn):
        target = m["predicate"][q]
        test = f"{kp} == {types.literal(kn, target)}" if types.reachable(kn, target) else "False"
        groups.setdefault(test, []).append(types.literal(qn, q))
    lines = [f"def {fn}({qp}, {kp}):"]
    for test, qs in groups.items():
        lines += [f"    if {qp} in {_set_literal(qs)}:", f"        return {test}"]
    lines.append("    return False")
    return lines, fn


def _numeric_domain(types: _Types, name: str) -> list[int]:
    return list(range(int(types.bound[name]) + 1))


NUMERIC_SET_LIMIT = 4096  # a numerical MLP with more inputs than this is written as runs of equal outputs


def _table(mlp, da: list[int], db: list[int], diagonal: bool, numerical: bool) -> torch.Tensor:
    """The MLP's outputs on every pair of ``da x db`` (``diagonal``: the pairs ``(x, x)``), in chunks."""
    if diagonal:
        ga = gb = torch.tensor(da)
    else:
        ga, gb = torch.tensor(da).repeat_interleave(len(db)), torch.tensor(db).repeat(len(da))
    if numerical:
        ga, gb = ga.double(), gb.double()
    return torch.cat([mlp.table(ga[i : i + 2**16], gb[i : i + 2**16]) for i in range(0, len(ga), 2**16)])


def _runs(values: list[int], outs: list[int]) -> list[tuple[int, int, int]]:
    """``(first, last, output)`` for each run of equal outputs over consecutive ``values``."""
    runs: list[list[int]] = []
    for v, o in zip(values, outs):
        if runs and runs[-1][2] == o:
            runs[-1][1] = v
        else:
            runs.append([v, v, o])
    return [tuple(r) for r in runs]


def _mlp_source(m: dict, mlp, types: _Types) -> list[str]:
    a, b = m["inputs"]
    numerical = m["kind"] == "num_mlp"
    da = _numeric_domain(types, a) if numerical else types.domain(a)
    db = _numeric_domain(types, b) if numerical else types.domain(b)
    diagonal = a == b  # one variable read twice: the model only ever sees (x, x)
    outputs = _table(mlp, da, db, diagonal, numerical).tolist()
    pa, pb = _param(a), _param(b)
    if pa == pb:
        pb = pb + "_2"
    head = [f"def {m['name']}({pa}, {pb}):"]
    if numerical and len(outputs) > NUMERIC_SET_LIMIT:
        return _runs_source(m["name"], pa, pb, da, db, outputs, diagonal)
    lit = (lambda name, v: str(v)) if numerical else types.literal
    if diagonal:
        keys = [lit(a, x) for x in da]
        head.append(f"    key = {pa}  # the same variable twice")
    else:
        keys = [f"({lit(a, x)}, {lit(b, y)})" for x in da for y in db]
        head.append(f"    key = ({pa}, {pb})")
    default = Counter(outputs).most_common(1)[0][0]
    branches: dict[int, list[str]] = {}
    for key, out in zip(keys, outputs):
        if out != default:
            branches.setdefault(out, []).append(key)
    return head + _grouped(branches, lambda ks: f"key in {_set_literal(ks)}", f"return {default}")


def _runs_source(name: str, pa: str, pb: str, da, db, outputs: list[int], diagonal: bool) -> list[str]:
    """A numerical MLP over a large integer domain, exactly, as runs: for the first input in ``[lo, hi]``, the second
    in ``[first, last]`` gives ``output`` (the MLP is piecewise linear, so its argmax changes rarely along a line)."""
    table = f"{name.upper()}_RUNS"
    if diagonal:
        runs = _runs(da, outputs)
        return [
            f"{table} = {runs!r}  # (first, last, output) over {pa}",
            "",
            "",
            f"def {name}({pa}, {pb}):",
            f"    for first, last, output in {table}:",
            f"        if first <= {pa} <= last:",
            "            return output",
            '    raise ValueError(f"{' + pa + '} is outside every value this variable can take")',
        ]
    rows = [_runs(db, outputs[i * len(db) : (i + 1) * len(db)]) for i in range(len(da))]
    groups: list[list] = []  # consecutive values of the first input with the same runs over the second
    for x, r in zip(da, rows):
        if groups and groups[-1][2] == r:
            groups[-1][1] = x
        else:
            groups.append([x, x, r])
    literal = "[\n" + "".join(f"    ({lo}, {hi}, {r!r}),\n" for lo, hi, r in groups) + "]"
    return [
        f"# for {pa} in [lo, hi]: runs (first, last, output) over {pb}",
        f"{table} = {literal}",
        "",
        "",
        f"def {name}({pa}, {pb}):",
        f"    for lo, hi, runs in {table}:",
        f"        if lo <= {pa} <= hi:",
        "            for first, last, output in runs:",
        f"                if first <= {pb} <= last:",
        "                    return output",
        '    raise ValueError(f"({' + pa + "}, {" + pb + '}) is outside every value these variables can take")',
    ]


def program_source(network, vocab, inputs: list[int], causal: bool, title: str) -> tuple[str, str]:
    """``(program.py, readout.csv)`` of a discretised :class:`~iclab.models.program.ProgramNetwork` whose inputs are
    the token ids ``inputs`` (the task's input symbols)."""
    c = network.config
    structure = network.structure()
    types = _Types(vocab, inputs, network.k, c.n_positions)
    body: list[str] = []
    run: list[str] = [
        "def run(tokens):",
        '    """The predicted symbol at every position of ``tokens`` (a list of symbols beginning with "<s>")."""',
        "    if len(tokens) > MAX_LENGTH:",
        '        raise ValueError(f"at most {MAX_LENGTH} tokens (the model\'s positions); got {len(tokens)}")',
        "    unknown = [t for t in tokens if t not in VOCAB]",
        "    if unknown:",
        '        raise ValueError(f"unknown symbols {unknown}; the vocabulary is {VOCAB}")',
        "    positions = list(range(len(tokens)))",
        "    ones = [1] * len(tokens)",
    ]
    mlps = {}
    for block_i, block in enumerate(network.blocks):
        for m_i, mlp in enumerate(block.cat_mlps):
            mlps[f"mlp_{block_i}_{m_i}"] = mlp
        for m_i, mlp in enumerate(block.num_mlps):
            mlps[f"num_mlp_{block_i}_{m_i}"] = mlp
    values = {"tokens": "tokens", "positions": "positions", "ones": "ones"}
    for m in structure["modules"]:
        name = m["name"]
        body.append(f"# {name} " + "#" * max(60 - len(name), 4))
        if m["kind"] in ("attn", "num_attn"):
            lines, fn = _predicate_source(m, types)
            body += lines
            keys, queries = values[m["key"]], values[m["query"]]
            if m["kind"] == "attn":
                types.cat[name] = types.cat[m["value"]]
                run.append(
                    f"    {name}_outputs = aggregate(select_closest({keys}, {queries}, {fn}), {values[m['value']]})"
                )
            else:
                types.bound[name] = types.bound[m["value"]] * c.n_positions
                run.append(
                    f"    {name}_outputs = numerical_aggregate(select({keys}, {queries}, {fn}), {values[m['value']]})"
                )
        else:
            body += _mlp_source(m, mlps[name], types)
            types.cat[name] = "int"
            args = ", ".join(values[i] for i in m["inputs"])
            run.append(f"    {name}_outputs = [{name}(a, b) for a, b in zip({args})]")
        values[name] = f"{name}_outputs"
        body.append("")
        body.append("")
    # the read-out, in the model's order: categorical variables, numerical variables, the bias
    cat_names, num_names = structure["categorical"], structure["numerical"]
    run += [
        "    logits = [[0.0] * len(CLASSES) for _ in tokens]",
        "    for name, column in [" + ", ".join(f"({n!r}, {values[n]})" for n in cat_names) + "]:",
        "        for i, v in enumerate(column):",
        "            logits[i] = [s + w for s, w in zip(logits[i], READOUT[(name, str(v))])]",
        "    for name, column in [" + ", ".join(f"({n!r}, {values[n]})" for n in num_names) + "]:",
        "        for i, x in enumerate(column):",
        "            logits[i] = [s + x * w for s, w in zip(logits[i], READOUT[(name, '_')])]",
        "    logits = [[s + b for s, b in zip(row, READOUT[('bias', '_')])] for row in logits]",
        "    return [CLASSES[max(range(len(CLASSES)), key=row.__getitem__)] for row in logits]",
    ]
    symbols = list(vocab.symbols)
    head = [
        f'"""{title}',
        "",
        "Decompiled by `iclab decompile` from a Transformer Program (Friedman, Wettig, Chen 2023). Standard library",
        "only; readout.csv beside this file holds the read-out weights. run(tokens) predicts every position.",
        '"""',
        "",
        "import csv",
        "import os",
        "",
        f"VOCAB = {[symbols[i] for i in inputs]!r}  # the input symbols",
        f"CLASSES = {symbols!r}",
        f"MAX_LENGTH = {c.n_positions}",
        f"CAUSAL = {causal!r}",
        "",
    ]
    source = "\n".join(head) + PRIMITIVES + READOUT_LOADER + "\n\n" + "\n".join(body) + "\n" + "\n".join(run) + "\n"
    return source, _readout_csv(network, structure, types, symbols)


def _readout_csv(network, structure: dict, types: _Types, symbols: list[str]) -> str:
    w = network.read_out.weight.detach().double().T  # (n_cat * k + n_num, V)
    k = network.k
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["variable", "value", *symbols])
    for v, name in enumerate(structure["categorical"]):
        for index in types.domain(name):
            label = types.symbols[index] if types.cat[name] == "token" else str(index)
            out.writerow([name, label, *(repr(x) for x in w[v * k + index].tolist())])
    n_cat = len(structure["categorical"])
    for n, name in enumerate(structure["numerical"]):
        out.writerow([name, "_", *(repr(x) for x in w[n_cat * k + n].tolist())])
    out.writerow(["bias", "_", *(repr(x) for x in network.read_out.bias.detach().double().tolist())])
    return buf.getvalue()


def decompile_run(run_dir: Path) -> Path:
    """Write ``RUN/program/program.py`` and ``readout.csv`` for a finished ``transformer_program`` run; returns the
    program's path. Refuses (one line, nothing written) a run of another family or one that has not finished."""
    from iclab.rundir import load_model, read_run_config
    from iclab.tasks import make_task
    from iclab.training.checkpoint import latest_checkpoint
    from iclab.utils import atomic_write_text

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    if cfg.model.name != "transformer_program":
        raise UserError(
            f"{run_dir}: a {cfg.model.name} run; only transformer_program runs decompile into programs "
            "(model.name: transformer_program)"
        )
    step = latest_checkpoint(run_dir).step
    if step < cfg.train.steps:
        raise UserError(
            f"{run_dir}: unfinished ({step} of {cfg.train.steps} steps); finish it with "
            f"`iclab train --resume --out {run_dir}` (the temperature reaches its end only at the last step)"
        )
    cfg, model, step = load_model(run_dir, device="cpu")
    task = make_task(cfg.task)
    title = f"{cfg.name}: {task.describe()}; {step} steps."
    inputs = task.input_ids()
    source, table = program_source(model.backbone, task.vocab, inputs, not task.bidirectional, title)
    out = run_dir / "program"
    out.mkdir(exist_ok=True)
    atomic_write_text(out / "readout.csv", table)
    atomic_write_text(out / "program.py", source)
    return out / "program.py"


def check_program(run_dir: Path, n_prompts: int | None = None, seed: int | None = None) -> dict:
    """Run ``RUN/program/program.py`` and the discretised model on held-out prompts (the run's evaluation split by
    default: ``eval.n_prompts`` drawn from ``eval.seed``) and count where they agree: ``{"prompts", "positions",
    "agree", "accuracy"}`` (positions: every non-pad token; accuracy: the program's, on the scored ones)."""
    from iclab.rundir import load_model
    from iclab.tasks import make_task

    run_dir = Path(run_dir)
    cfg, model, _ = load_model(run_dir, device="cpu")
    task = make_task(cfg.task)
    program = load_program(run_dir / "program" / "program.py")
    n = cfg.eval.n_prompts if n_prompts is None else n_prompts
    prompts = task.eval_prompts(n, seed=cfg.eval.seed if seed is None else seed)
    symbols = task.vocab.symbols
    agree = total = right = scored = 0
    for start in range(0, n, 500):
        part = prompts[start : start + 500]
        with torch.no_grad():
            predicted = model(part.tokens).argmax(-1).tolist()
        for row, ids in enumerate(part.tokens.tolist()):
            tokens = [symbols[i] for i in ids if i != task.vocab.pad]
            ran = program.run(tokens)
            agree += sum(a == symbols[b] for a, b in zip(ran, predicted[row]))
            total += len(tokens)
            for i, target in enumerate(part.targets[row, : len(tokens)].tolist()):
                if target >= 0:
                    scored += 1
                    right += ran[i] == symbols[target]
    return {"prompts": n, "positions": total, "agree": agree, "accuracy": right / max(scored, 1)}


def load_program(path: Path):
    """Import a decompiled ``program.py`` as a module (its ``run``, predicates and tables)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"iclab_program_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
