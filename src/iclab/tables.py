"""The one CSV writer and reader of iclab: every table a run, an analysis or a comparison writes goes through
:func:`write_table` (or :func:`table_text`) and is read back with :func:`read_table`.

One format everywhere: a header row, ``\\n`` line ends, floats with 6 significant digits (``0.123457``,
``nan``, ``inf`` kept as such), ``None`` as an empty cell. A reader names the columns it needs and their
types; a missing column or a cell that does not parse is one :class:`~iclab.errors.RunFolderError` line
naming the file.

    write_table(run_dir / "eval" / "curves.csv", rows, ("learner", "shift", "k", "mean", "ci_low", "ci_high"))
    rows = read_table(run_dir / "eval" / "curves.csv", {"learner": str, "k": int, "mean": float})
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

FLOAT_FORMAT = ".6g"  # the one float format of every table


def format_cell(value: Any) -> str:
    """A cell as written: floats with :data:`FLOAT_FORMAT`, ``None`` as an empty cell, the rest as ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, FLOAT_FORMAT) if math.isfinite(value) else str(value)
    return str(value)


def table_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as CSV text. ``columns`` defaults to every key the rows have, in the order first seen; keys a
    row has beyond ``columns`` are left out."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def write_table(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` to ``path`` as CSV (:func:`table_text`), atomically: a reader never sees half a table."""
    from iclab.utils import atomic_write_text

    path = Path(path)
    atomic_write_text(path, table_text(rows, columns))
    return path


def read_table(
    path: str | Path,
    types: Mapping[str, Callable[[str], Any]] | None = None,
    *,
    what: str = "table",
    hint: str = "",
    missing_ok: bool = False,
) -> list[dict]:
    """The rows of the CSV file ``path``, each a dict of its columns; the columns in ``types`` must be present
    and are converted (``int``, ``float``, ``str`` or any one-argument parser), the others stay strings.

    A missing file is ``[]`` with ``missing_ok``, else an error; a damaged one (a column missing, a cell that does
    not parse, bytes that are not text) is one :class:`~iclab.errors.RunFolderError` naming the file, ``what`` it
    should be and the ``hint`` (e.g. the command that writes it again)."""
    from iclab.errors import RunFolderError

    path = Path(path)
    types = dict(types or {})
    after = f"; {hint}" if hint else ""
    if not path.is_file():
        if missing_ok:
            return []
        raise RunFolderError(f"{path}: missing{after}")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [{**r, **{c: convert(r[c]) for c, convert in types.items()}} for r in rows]
    except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError):
        need = f" (columns {', '.join(types)})" if types else ""
        raise RunFolderError(f"{path}: not a {what}{need}{after}") from None
