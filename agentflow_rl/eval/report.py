"""``summary.md`` and ``summary.json`` of a run directory, and the table ``compare`` prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from agentflow_core.files import write_atomic
from agentflow_core.inert import inert
from agentflow_core.serde import to_json
from agentflow_rl.eval.outcome import causes
from agentflow_rl.eval.summary import BenchmarkSummary, RunSummary, by_name


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _per_query(total: float, n: int) -> str:
    return f"{total / n:.2f}" if n else "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    # Each cell one inert line: a benchmark or tool name with a newline would start a row of its own.
    header, rows = [inert(h) for h in header], [[inert(cell) for cell in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _main_row(b: BenchmarkSummary, judged: bool) -> list[str]:
    row = [b.benchmark, str(b.n), _pct(b.accuracy), f"{b.mean_value:.3f}"]
    if judged:
        row.append(_pct(b.judge_accuracy))
    tokens = sum(t.prompt + t.completion for t in b.tokens.values())
    row += [
        f"{b.mean_turns:.2f}",
        _per_query(b.tool_calls, b.n),
        _pct(b.tool_error_rate),
        f"{tokens:.0f}",
        f"{b.mean_latency_s:.1f}",
        f"{b.latency_p50_s:.1f} / {b.latency_p95_s:.1f}",
        str(b.errors),
    ]
    return row


def markdown(summary: RunSummary) -> str:
    judged = any(b.judge_accuracy is not None for b in summary.benchmarks)
    lines = []
    if summary.info is not None:
        info = summary.info
        engines = ", ".join(f"{role}={model}" for role, model in info.engines.items())
        lines += [
            f"Mode: **{info.mode.value}**; sample: {info.limit or 'all'} per set, seed {info.seed}; "
            f"max steps: {info.max_steps}; tools: {', '.join(info.tools) or 'none'}.",
            f"Engines: {engines or 'default'}." + (f" Judge: {info.judge}." if info.judge else ""),
            "",
        ]
    header = ["benchmark", "n", "accuracy %", "mean score"] + (["judge %"] if judged else [])
    header += ["turns", "tool calls/q", "tool errors %", "tokens/q", "s/query", "p50 / p95 s", "errors"]
    rows = [_main_row(b, judged) for b in summary.benchmarks]
    lines += _table(header, rows)
    lines += ["", f"Macro-average accuracy: {_pct(summary.macro_accuracy)}%", ""]
    lines += _unfinished(summary)
    lines += _detail(summary)
    return "\n".join(lines) + "\n"


def _unfinished(summary: RunSummary) -> list[str]:
    """Says loudly that queries are missing from every figure, and why."""
    if not summary.errors:
        return []
    return [
        f"**{summary.errors} queries have no usable result yet** ({causes(summary.failures())}): they are in "
        "no figure above but `errors`; running the same eval command again asks them again.",
        "",
    ]


def _detail(summary: RunSummary) -> list[str]:
    """Tools and tokens per module, one row per benchmark."""
    tools = sorted({t for b in summary.benchmarks for t in b.tools})
    roles = sorted({r for b in summary.benchmarks for r in b.tokens})
    lines: list[str] = []
    if tools:
        rows = [
            [b.benchmark]
            + [f"{b.tools[t].calls} ({_pct(b.tools[t].error_rate)}% err)" if t in b.tools else "0" for t in tools]
            for b in summary.benchmarks
        ]
        lines += ["Tool calls (error rate):", "", *_table(["benchmark", *tools], rows), ""]
    if roles:
        rows = [
            [b.benchmark]
            + [f"{b.tokens[r].prompt:.0f} / {b.tokens[r].completion:.0f}" if r in b.tokens else "–" for r in roles]
            for b in summary.benchmarks
        ]
        lines += ["Mean tokens per query, prompt / completion:", "", *_table(["benchmark", *roles], rows), ""]
    return lines


def write_summary(summary: RunSummary, run_dir: Path) -> None:
    """Atomically: ``eval summary`` may run while the eval itself writes them."""
    write_atomic(run_dir / "summary.json", to_json(summary, indent=2) + "\n")
    write_atomic(run_dir / "summary.md", markdown(summary))


def compare_markdown(a: RunSummary, b: RunSummary, names: tuple[str, str]) -> str:
    """Two runs side by side: accuracy with B - A in points, then turns, tools and time per query."""
    first, second = by_name(a), by_name(b)
    rows = []
    for bench in [*first, *(n for n in second if n not in first)]:
        x, y = first.get(bench), second.get(bench)
        delta = f"{100 * (y.accuracy - x.accuracy):+.1f}" if x and y else "–"
        rows.append(
            [
                bench,
                _pct(x.accuracy if x else None),
                _pct(y.accuracy if y else None),
                delta,
                _pair(x, y, lambda s: str(s.n)),
                _pair(x, y, lambda s: f"{s.mean_turns:.2f}"),
                _pair(x, y, lambda s: _per_query(s.tool_calls, s.n)),
                _pair(x, y, lambda s: _pct(s.tool_error_rate)),
                _pair(x, y, lambda s: f"{s.mean_latency_s:.1f}"),
            ]
        )
    macro = f"{100 * (b.macro_accuracy - a.macro_accuracy):+.1f}"
    rows.append(["macro", _pct(a.macro_accuracy), _pct(b.macro_accuracy), macro, "", "", "", "", ""])
    header = ["benchmark", f"A: {names[0]} %", f"B: {names[1]} %", "B - A"]
    header += ["n A / B", "turns A / B", "tool calls/q A / B", "tool errors % A / B", "s/query A / B"]
    return "\n".join(_table(header, rows)) + "\n"


def _pair(x: BenchmarkSummary | None, y: BenchmarkSummary | None, show: Callable[[BenchmarkSummary], str]) -> str:
    return f"{show(x) if x else '–'} / {show(y) if y else '–'}"
