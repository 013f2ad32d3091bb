"""Run every benchmark and write one page of results: ``benchmarks/RESULTS.md``.

    make bench                                   # full sizes (tens of minutes on 2 cores)
    make bench BENCH_ARGS=--quick                # small sizes, a few minutes: a CI-like check
    .venv/bin/python benchmarks/run_all.py --quick --only scoring_throughput online_read

Each benchmark runs in its own process, one after another (never side by side: every figure is a
ratio measured within one benchmark's run, and two runs at once would share the 2 cores), prints one
JSON object, and lands in the page with its command line, its wall time, every figure it printed and,
where the issue set one, each goal met or missed. The page starts with the date, the commit and the
machine (cores, memory, CPU model).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Goal:
    """A target from the speed-and-scale issue: ``figure op threshold`` on one printed key."""

    label: str
    key: str  # dotted path into the benchmark's JSON
    op: str  # ">=" or "<="
    threshold: float


@dataclass(frozen=True)
class Benchmark:
    name: str
    what: str
    args: list[str]
    quick_args: list[str]
    goals: list[Goal] = field(default_factory=list)


BENCHMARKS = [
    Benchmark(
        "scoring_throughput",
        "Exact top-100 with exclusions and fresh slots against the matrix multiply that feeds it (the bound)",
        ["--users", "20000", "--videos", "100000", "--dim", "64"],
        ["--quick"],
        [
            Goal(
                "reelrec's top-k with exclusions and quota >= 75% of the matmul bound",
                "top_k_with_quota_ratio_of_bound",
                ">=",
                0.75,
            )
        ],
    ),
    Benchmark(
        "spark_scoring",
        "The same top-k as a Spark job partitioned by users, 1 and 2 executor cores",
        [],
        ["--quick"],
    ),
    Benchmark(
        "online_read",
        "Serving reads from the production online store (Redis): SDK, HTTP feature server, raw HMGET",
        [],
        ["--quick"],
        [
            Goal("one user p99 <= 1 ms", "recommender_1_user.p99_ms", "<=", 1.0),
            Goal("one user p99 <= 3x the raw read", "ratios.recommender_1_user_p99_over_raw_p99", "<=", 3.0),
            Goal("100 users p99 <= 10 ms", "recommender_100_users.p99_ms", "<=", 10.0),
            Goal("HTTP feature server p99 <= 5 ms, one user", "feature_server_1_user.p99_ms", "<=", 5.0),
        ],
    ),
    Benchmark(
        "publish",
        "Publishing candidates and embeddings: Feast's write path against raw writes of the same bytes",
        [],
        ["--quick"],
        [
            Goal("Redis: >= 50% of raw pipelined HSETs", "redis.ratio_of_raw", ">=", 0.5),
            Goal("SQLite: >= 25% of one-transaction upserts", "sqlite.ratio_of_raw", ">=", 0.25),
        ],
    ),
    Benchmark(
        "feature_engines",
        "User-features aggregation: Spark against the same SQL in DuckDB; a night's fixed overhead",
        [],
        ["--quick"],
        [Goal("Spark <= 2x DuckDB per row", "engines.ratio_spark_over_duckdb", "<=", 2.0)],
    ),
    Benchmark(
        "airflow_nights",
        "Nights through the Airflow scheduler (embedded profile): wall per night, task seconds, peak memory",
        ["--preset", "medium", "--days", "4", "--force-publish"],
        ["--preset", "tiny", "--days", "2"],
        [Goal("every night <= 5 min through the scheduler", "max_night_wall_s", "<=", 300.0)],
    ),
    Benchmark(
        "nightly_stages",
        "Every stage of the nightly pipeline in one process (no Airflow): seconds, rows, peak memory",
        ["--preset", "small", "--days", "4", "--json"],
        ["--preset", "tiny", "--days", "3", "--json"],
    ),
]


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine, for the page's header."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_gib, 1),
        "cpu": model,
        "python": platform.python_version(),
    }


def _last_json(stdout: str) -> Any:
    """The last JSON value a benchmark printed (it may print progress lines before it)."""
    decoder = json.JSONDecoder()
    found: Any = None
    for pos, char in enumerate(stdout):
        if char in "{[" and (pos == 0 or stdout[pos - 1] == "\n"):
            try:
                found, _ = decoder.raw_decode(stdout[pos:])
            except json.JSONDecodeError:
                continue
    if found is None:
        raise ValueError("printed no JSON object")
    return found


def _lookup(result: Any, dotted: str) -> Any:
    value = result
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def run_one(bench: Benchmark, quick: bool, extra: list[str] | None = None) -> dict[str, Any]:
    """Run one benchmark in its own process; its JSON, wall seconds, command and goals."""
    chosen = bench.quick_args if quick else bench.args
    command = [sys.executable, f"benchmarks/{bench.name}.py", *chosen, *(extra or [])]
    shown = " ".join([".venv/bin/python", *command[1:]])
    print(f"[bench] {shown}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    entry: dict[str, Any] = {"name": bench.name, "command": shown, "seconds": round(seconds, 1)}
    try:
        if done.returncode != 0:
            raise ValueError(f"exit code {done.returncode}: {done.stderr.strip()[-1500:]}")
        entry["result"] = _last_json(done.stdout)
    except ValueError as error:
        entry["error"] = str(error)
        return entry
    entry["goals"] = [
        {
            "label": goal.label,
            "value": _lookup(entry["result"], goal.key),
            "met": (value := _lookup(entry["result"], goal.key)) is not None
            and _OPS[goal.op](float(value), goal.threshold),
        }
        for goal in bench.goals
    ]
    return entry


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, inner in value.items():
            rows += _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix, value)]


def _table(result: Any) -> list[str]:
    """A dict as ``figure | value`` rows; a list of dicts (one per stage or night) as a wide table."""
    if isinstance(result, list) and result and all(isinstance(r, dict) for r in result):
        scalar = [{k: v for k, v in row.items() if not isinstance(v, dict | list)} for row in result]
        result = [row for row in scalar if row.get("seconds") or not row.get("skipped")]
        columns = list(dict.fromkeys(key for row in result for key in row))
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in result]
        return lines
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| `{key}` | {_cell(value)} |" for key, value in _flatten(result)]
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value)[:120]
    return str(value)


def render(entries: list[dict[str, Any]], quick: bool, header: dict[str, Any]) -> str:
    """The RESULTS.md page."""
    by_name = {b.name: b for b in BENCHMARKS}
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench{' BENCH_ARGS=--quick' if quick else ''}` (benchmarks/run_all.py) on "
        f"{header['date']}, commit `{header['commit']}`.",
        "",
        f"Machine: {header['machine']['cores']} cores, {header['machine']['memory_gib']} GiB memory, "
        f"{header['machine']['cpu']}, Python {header['machine']['python']}. The machine is shared: "
        "compare the ratios measured side by side within one benchmark, not absolute figures across runs.",
        "",
        "## Goals",
        "",
        "| benchmark | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        for goal in entry.get("goals", []):
            met = "yes" if goal["met"] else "**no**"
            lines.append(f"| {entry['name']} | {goal['label']} | {_cell(goal['value'])} | {met} |")
    for entry in entries:
        lines += ["", f"## {entry['name']}", "", by_name[entry["name"]].what + ".", ""]
        lines += [f"    {entry['command']}", "", f"Wall time: {entry['seconds']} s.", ""]
        if "error" in entry:
            lines += ["**Failed**:", "", "```", entry["error"], "```"]
            continue
        lines += _table(entry["result"])
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick size")
    parser.add_argument("--only", nargs="*", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="extra arguments for one benchmark, e.g. --with 'feature_engines=--home /tmp/medium'",
    )
    args = parser.parse_args()
    extra: dict[str, list[str]] = {}
    for item in args.extra:
        name, _, rest = item.partition("=")
        extra[name] = rest.split()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "machine": machine(),
    }
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    entries = [run_one(bench, args.quick, extra.get(bench.name)) for bench in chosen]
    args.out.write_text(render(entries, args.quick, header))
    failed = [e["name"] for e in entries if "error" in e]
    print(f"[bench] wrote {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
