"""The ``circuit`` instrument, for Transformer Programs (:mod:`iclab.models.program`): which variables every module
reads and what each head's predicate selects, as a table and a drawing of the data flow.

    RUN/analysis/circuit.csv   layer, module, kind, query, key, value, inputs, predicate
    RUN/analysis/circuit.png   variables by layer, an arrow from every variable a module reads to what it writes
"""

from __future__ import annotations

from pathlib import Path

from iclab.analysis.instruments import Context, Figure, Inapplicable, Result, Table, instrument, read_csv


def describe_predicate(
    mapping: list[int], query_kind: str, key_kind: str, symbols: list[str], inputs: set[int], n_positions: int
) -> str:
    """A short reading of a predicate ``mapping[q] = k``: ``q == k`` when it is the identity on the values that
    occur, ``k == c`` when every query value selects the same key value, else the pairs ``q->k``."""

    def name(kind: str, v: int) -> str:
        return symbols[v] if kind == "token" else str(v)

    def occurs(kind: str, v: int) -> bool:
        return v in inputs if kind == "token" else v < n_positions if kind == "position" else True

    pairs = [(q, k) for q, k in enumerate(mapping) if occurs(query_kind, q)]
    if query_kind == key_kind and all(q == k for q, k in pairs):
        return "q == k"
    same = [q for q, k in pairs if q == k]
    if query_kind == key_kind and same and all(q == k or not occurs(key_kind, k) for q, k in pairs):
        return f"q == k for q in {{{', '.join(name(query_kind, q) for q in same)}}}, nothing (<s>) otherwise"
    if query_kind == key_kind == "position":
        for offset, words in ((-1, "the previous position"), (1, "the next position")):
            exceptions = [(q, k) for q, k in pairs if k != q + offset]
            if len(exceptions) <= len(pairs) // 3:
                rest = ", ".join(f"{q}->{k if occurs(key_kind, k) else '-'}" for q, k in exceptions)
                return f"k == q {'-' if offset < 0 else '+'} 1 ({words})" + (f"; except {rest}" if rest else "")
    targets = {k for _, k in pairs}
    if len(targets) == 1:
        k = next(iter(targets))
        return f"k == {name(key_kind, k)}" if occurs(key_kind, k) else "nothing (<s> by default)"
    return ", ".join(f"{name(query_kind, q)}->{name(key_kind, k) if occurs(key_kind, k) else '-'}" for q, k in pairs)


def circuit_rows(network, task) -> list[dict]:
    """One row per module of a discretised program: what it reads and (heads) what its predicate selects."""
    structure = network.structure()
    kinds = {"tokens": "token", "positions": "position"}
    symbols = list(task.vocab.symbols)
    inputs = set(task.input_ids())
    rows = []
    for m in structure["modules"]:
        layer = int(m["name"].rsplit("_", 2)[-2])
        row = {
            "layer": layer,
            "module": m["name"],
            "kind": m["kind"],
            "query": "",
            "key": "",
            "value": "",
            "inputs": "",
            "predicate": "",
        }
        if m["kind"] in ("attn", "num_attn"):
            row.update(query=m["query"], key=m["key"], value=m["value"])
            row["predicate"] = describe_predicate(
                m["predicate"],
                kinds.get(m["query"], "int"),
                kinds.get(m["key"], "int"),
                symbols,
                inputs,
                network.config.n_positions,
            )
            if m["kind"] == "attn":
                kinds[m["name"]] = kinds.get(m["value"], "int")
        else:
            row["inputs"] = " ".join(m["inputs"])
            kinds[m["name"]] = "int"
        rows.append(row)
    return rows


def plot_circuit(rows: list[dict], path: Path) -> Path:
    """Variables in columns by the layer that writes them (inputs first); an arrow from each variable a module
    reads to the variable it writes (attention: query, key and value)."""
    import matplotlib.pyplot as plt

    columns: dict[int, list[str]] = {0: ["tokens", "positions", "ones"]}
    for r in rows:
        columns.setdefault(r["layer"] + 1, []).append(r["module"])
    where = {}
    for x, names in columns.items():
        for y, name in enumerate(names):
            where[name] = (x, -y)
    height = max(len(v) for v in columns.values())
    fig, ax = plt.subplots(figsize=(3 + 2.6 * len(columns), 1.2 + 0.5 * height))
    colours = {"attn": "#4a7fd0", "num_attn": "#d07a4a", "mlp": "#3b9b5a", "num_mlp": "#9b3b8f"}
    for r in rows:
        reads = [r["query"], r["key"], r["value"]] if r["kind"] in ("attn", "num_attn") else r["inputs"].split()
        for source in dict.fromkeys(v for v in reads if v):
            (x0, y0), (x1, y1) = where[source], where[r["module"]]
            ax.annotate(
                "",
                xy=(x1 - 0.08, y1),
                xytext=(x0 + 0.08, y0),
                arrowprops={"arrowstyle": "->", "color": colours[r["kind"]], "alpha": 0.6, "lw": 1.2},
            )
    kind_of = {r["module"]: r["kind"] for r in rows}
    for name, (x, y) in where.items():
        colour = colours.get(kind_of.get(name, ""), "#555555")
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": colour},
        )
    ax.set_xlim(-0.7, max(columns) + 0.7)
    ax.set_ylim(-height + 0.3, 0.7)
    ax.set_xticks(sorted(columns), ["inputs", *[f"layer {x - 1}" for x in sorted(columns)[1:]]])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(
        "What every module reads (blue: categorical heads, orange: numerical heads, green / purple: MLPs)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _circuit_section(folder: Path, d: int) -> list:
    if not (folder / "circuit.csv").is_file():
        return []
    rows = read_csv(folder / "circuit.csv")
    items: list = [
        Table(
            "The program's circuit: what each module reads, and which keys each head's predicate selects:",
            ["module", "query", "key", "value", "MLP inputs", "predicate"],
            [[r["module"], r["query"], r["key"], r["value"], r["inputs"], r["predicate"]] for r in rows],
        )
    ]
    if (folder / "circuit.png").is_file():
        items.append(Figure("The program's data flow", folder / "circuit.png"))
    return items


@instrument("circuit", section=_circuit_section, kinds=("tokens",))
def circuit(ctx: Context) -> Result:
    """Transformer Programs: each module's reads and each head's predicate."""
    network = getattr(ctx.model, "backbone", None)
    if not hasattr(network, "structure"):
        raise Inapplicable(f"model {ctx.cfg.model.name!r} is not a transformer_program")
    ctx.log("the program's circuit ...")
    rows = circuit_rows(network, ctx.task)
    return Result(tables={"circuit.csv": rows}, figures={"circuit.png": lambda path: plot_circuit(rows, path)})
