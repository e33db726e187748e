"""Every markdown table renders: its header, separator and rows have as many cells, and none is
wider than the summary's MAX_COLUMNS (issue 23). Checked on every tracked .md file and on a
summary written from metrics that hold every table metric."""

import re
import subprocess
from pathlib import Path

import pytest

from paperlib import records
from paperlib.reports import summary

ROOT = Path(__file__).resolve().parents[1]
# a cell boundary is a | not escaped by a backslash (GitHub splits on it even in code spans)
_BAR = re.compile(r"(?<!\\)\|")


def cells(line: str) -> list[str]:
    """The cells of one table line, without the outer bars."""
    parts = _BAR.split(line.strip())
    return [p.strip() for p in parts[1:-1]] if line.strip().endswith("|") else parts[1:]


def tables(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each table: a run of lines starting with | outside code
    fences."""
    found, current, start, fenced = [], [], 0, False
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.lstrip().startswith("|"):
            if not current:
                start = n
            current.append(line)
            continue
        if current:
            found.append((start, current))
            current = []
    if current:
        found.append((start, current))
    return found


def problems(text: str, max_columns: int = summary.MAX_COLUMNS) -> list[str]:
    out = []
    for start, lines in tables(text):
        head = cells(lines[0])
        if len(lines) < 2 or not re.fullmatch(
            r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", lines[1].strip()
        ):
            out.append(f"line {start}: a table without a separator line")
            continue
        if len(cells(lines[1])) != len(head):
            out.append(f"line {start}: {len(head)} header cells, {len(cells(lines[1]))} separator")
        for k, line in enumerate(lines[2:], start + 2):
            if len(cells(line)) != len(head):
                out.append(f"line {k}: {len(cells(line))} cells under {len(head)} headers")
        if len(head) > max_columns:
            out.append(f"line {start}: {len(head)} columns, more than {max_columns}")
    return out


def tracked_markdown() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / f for f in listed if (ROOT / f).is_file()]


def test_the_checker_sees_a_broken_and_a_wide_table():
    broken = "| a | b |\n|---|---|---|\n| 1 | 2 |\n"
    assert problems(broken) == ["line 1: 2 header cells, 3 separator"]
    bare = "| KL(q(z|x)) | b |\n|---|---|\n| 1 | 2 |\n"
    assert problems(bare)  # the bare | splits the header
    assert not problems(bare.replace("z|x", r"z\|x"))
    wide = "|" + " a |" * 9 + "\n" + "|---" * 9 + "|\n"
    assert problems(wide) == ["line 1: 9 columns, more than 8"]
    assert not problems("```\n| not | a table\n```\n")


def test_every_tracked_markdown_table_renders_and_answers_one_question():
    found = {f.relative_to(ROOT).as_posix(): problems(f.read_text()) for f in tracked_markdown()}
    assert not {f: p for f, p in found.items() if p}


def test_the_summary_splits_every_metric_into_tables_of_at_most_eight_columns(tmp_path):
    nb = tmp_path / "01_speech_dsae"
    every = {m: [0.5, 0.6, 0.7] for m in summary.TABLE_METRICS}
    every.update({"mi_zs_target_nats_low": [0.4] * 3, "mi_zs_target_nats_high": [0.8] * 3})
    metrics = {o: dict(every) for o in ("elbo", "mi", "cmi")}
    records.write_metrics(nb / "metrics.json", metrics, params={"seeds": [0, 1, 2]})
    text = summary.write_summary(tmp_path).read_text()
    assert not problems(text)
    shown = {c for _, lines in tables(text) for c in cells(lines[0])}
    for key, (label, _) in summary.TABLE_METRICS.items():
        assert summary._cell(label) in shown, f"{key} is in no table"
    # identical objectives: every headline contrast is decided "equivalent", Holm over the table
    assert "**Decisions at the stated margins**" in text
    assert "| probe acc. z (mean) (±0.03) | equivalent (0.000) | equivalent (0.000) |" in text
