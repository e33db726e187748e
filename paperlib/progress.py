"""Training progress that a person sees, wherever the notebook runs.

- In an interactive Jupyter front end (JupyterLab, Colab) `progress_bar` is tqdm.auto's widget.
- Run headless by ``run_all.sh`` (`paperlib.suite.runner` sets ``PAPERLIB_PROGRESS=text`` for the
  kernel), a widget would only leave an empty log: there `TextProgress` prints plain lines with
  the step, the latest loss terms and the ETA, at most every `TEXT_INTERVAL_S` seconds (plus the
  last step), to stdout. papermill writes them into ``results/_logs/NN_name.log`` and the runner
  echoes them to the terminal, prefixed with the notebook's name.

``PAPERLIB_PROGRESS`` accepts ``auto`` (the default: tqdm.auto decides), ``text`` and ``off``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

#: environment variable choosing the progress display; the runner sets it to "text"
PROGRESS_ENV = "PAPERLIB_PROGRESS"
MODES = ("auto", "text", "off")
#: the first characters of every line `TextProgress` prints (the runner echoes these lines)
PREFIX = "[progress]"
#: at most one line per this many seconds (the first and last steps always print)
TEXT_INTERVAL_S = 5.0


def progress_mode() -> str:
    """The display chosen by ``$PAPERLIB_PROGRESS`` (``auto`` when unset).

    Raises
    ------
    ValueError
        For any other value, naming the variable and the accepted ones.
    """
    mode = os.environ.get("PAPERLIB_PROGRESS", "auto")  # PROGRESS_ENV.strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{PROGRESS_ENV}={mode!r} is not accepted; use one of {list(MODES)}")
    return mode


def _fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TextProgress:
    """A plain-text stand-in for tqdm's bar (``update``, ``set_postfix``, ``close``).

    Prints ``[progress] fit 120/600 (20%) loss=3.1 kl_z=2.5 | 0:12 elapsed, ETA 0:48`` lines.
    The rate is measured from this run's own steps (``initial`` resumed steps excluded), so a
    resumed run's ETA is not flattered by the steps it skipped.

    Parameters
    ----------
    total : the last step.
    initial : the step the run starts from (non-zero when resuming).
    desc : a label for the line.
    disable : print nothing at all.
    interval_s : at most one line per this many seconds.
    file : where to print (default: ``sys.stdout`` at the time of each print).
    clock : the time source, ``time.monotonic`` unless a test passes its own.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        disable: bool = False,
        interval_s: float = TEXT_INTERVAL_S,
        file: TextIO | None = None,
        clock: Any = time.monotonic,
    ):
        self.total, self.n, self.desc = int(total), int(initial), desc
        self.disable, self.interval_s, self._file, self._clock = disable, interval_s, file, clock
        self._n0, self._t0 = self.n, clock()
        self._last_print: float | None = None
        self._printed_n: int | None = None
        self.postfix: dict[str, Any] = {}
        self.lines = 0  # how many lines were printed (for tests and the final line)

    def set_postfix(self, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Remember the values shown after the step (tqdm's signature)."""
        self.postfix = {**(values or {}), **kwargs}

    def update(self, n: int = 1) -> None:
        """Advance by `n` steps; print when the interval has passed or the last step is done."""
        self.n += n
        now = self._clock()
        due = self._last_print is None or now - self._last_print >= self.interval_s
        if not self.disable and (due or self.n >= self.total):
            self._print(now)

    def close(self) -> None:
        """Print the final state once, unless the last update already did."""
        if not self.disable and self.n != self._printed_n:
            self._print(self._clock())

    def line(self, now: float | None = None) -> str:
        """The progress line for the current state."""
        now = self._clock() if now is None else now
        elapsed = now - self._t0
        done = self.n - self._n0
        pct = 100.0 * self.n / self.total if self.total else 100.0
        parts = [PREFIX, *([self.desc] if self.desc else []), f"{self.n}/{self.total} ({pct:.0f}%)"]
        if self.postfix:
            parts.append(" ".join(f"{k}={v}" for k, v in self.postfix.items()))
        timing = f"| {_fmt_seconds(elapsed)} elapsed"
        if 0 < done and self.n < self.total:
            timing += f", ETA {_fmt_seconds(elapsed / done * (self.total - self.n))}"
        parts.append(timing)
        return " ".join(parts)

    def _print(self, now: float) -> None:
        out = self._file if self._file is not None else sys.stdout
        print(self.line(now), file=out, flush=True)
        self._last_print, self._printed_n = now, self.n
        self.lines += 1

    def __enter__(self) -> TextProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int, initial: int = 0, desc: str = "", disable: bool = False) -> Any:
    """A progress display for a loop of `total` steps, chosen by ``$PAPERLIB_PROGRESS``.

    ``auto``: tqdm.auto's bar (a widget in JupyterLab or Colab, text on a terminal); ``text``:
    `TextProgress`; ``off``: nothing is shown. Both kinds answer ``update``, ``set_postfix``
    and ``close``.
    """
    mode = progress_mode()
    if mode == "text" or mode == "off":
        return TextProgress(total, initial, desc, disable=disable or mode == "off")
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disable, desc=desc, leave=False)


class Stopwatch:
    """Wall seconds of named sections: ``with clock("probes"): ...``; a name used twice adds
    up. ``clock.metrics("eval_seconds")`` -> {"eval_seconds": total, "eval_seconds_probes": ...}.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str):
        return _Section(self, name)

    def metrics(self, prefix: str) -> dict[str, float]:
        out = {f"{prefix}_{k}": v for k, v in self.seconds.items()}
        out[prefix] = sum(self.seconds.values())
        return out


class _Section:
    def __init__(self, clock: Stopwatch, name: str) -> None:
        self.clock, self.name = clock, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        spent = time.perf_counter() - self.t0
        self.clock.seconds[self.name] = self.clock.seconds.get(self.name, 0.0) + spent
