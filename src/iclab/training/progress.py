"""Progress: a bar on a terminal, plain log lines otherwise (CI logs, files, pipes)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self, total: int, start: int = 0, stream: TextIO | None = None, bar: bool | None = None, every: int = 50
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.every = every
        self.use_bar = self.stream.isatty() if bar is None else bar
        self._bar = None
        self._t0 = time.perf_counter()
        self._start = start
        if self.use_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=start, file=self.stream, unit="step", dynamic_ncols=True, desc="train"
            )

    def update(self, step: int, **fields: float) -> None:
        """Called after every step; ``fields`` are shown (bar) or printed every ``every`` steps (plain)."""
        if self._bar is not None:
            self._bar.update(1)
            if fields:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in fields.items()}, refresh=False)
        elif fields and (step % self.every == 0 or step == self.total):
            rate = (step - self._start) / max(time.perf_counter() - self._t0, 1e-9)
            text = " ".join(f"{k} {v:.4g}" for k, v in fields.items())
            print(f"step {step}/{self.total} {text} ({rate:.1f} steps/s)", file=self.stream, flush=True)

    def write(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
