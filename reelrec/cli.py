"""The ``reelrec`` command: generate a world, run nights through Airflow, look at the results.

reelrec generate --preset small --start 2026-11-01 --days 7
reelrec run --date 2026-11-01 --to 2026-11-07 [--inline]
reelrec services up|down|status [--json]
reelrec stop            # stops everything run/ui/services up started
reelrec summary --date 2026-11-07
reelrec features --user u000042 [--json]
reelrec recommend --user u000042 [--k 10] [--json]
reelrec status [--json]
reelrec models list [--json]
reelrec rollback --to VERSION [--json]
reelrec housekeep [--dry-run] [--json]   # compact/vacuum, prune models, expire lists (docs/housekeeping.md)
reelrec validate --suite outputs --date 2026-11-07
reelrec report --date 2026-11-07 [--open]   # runs/dt=D/report.html: plots, Data Docs, lineage
reelrec ui
reelrec demo            # what `make run` calls: generate + run every night + summary
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from reelrec import cli_housekeep, cli_models, cli_report
from reelrec.dates import add_days, cli_date, dates_between
from reelrec.settings import Settings

# A name that becomes one file name under REELREC_HOME (a model version's release record).
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")


def _dates(start: str, end: str | None) -> list[str]:
    try:
        return dates_between(start, end or start)
    except ValueError:
        raise SystemExit(f"--to {end} is before --date {start}") from None


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from synthetic_world import generate

    started = time.perf_counter()
    summary = generate(settings, args.preset, args.start, args.days, seed=args.seed)
    print(json.dumps(summary.get("totals", summary), indent=2, default=str))
    print(f"landing zone: {settings.landing}  ({time.perf_counter() - started:.1f}s)")
    return 0


def run_nights(
    dates: list[str],
    settings: Settings,
    as_json: bool = False,
    inline: bool = False,
    conf: dict[str, Any] | None = None,
    quiet: bool = False,
) -> int:
    """Run the nightly DAG for each date in order; stop at the first failure.

    Through the scheduler of the profile's stack (started or reused) by default; ``inline`` runs each
    night in one process with ``airflow dags test`` instead (for debugging). ``conf`` holds the
    runs' params (``{"force_publish": True}``); ``quiet`` prints each night's outcome and errors only.
    """
    if not inline:
        from reelrec.nights import run_scheduled

        return run_scheduled(dates, settings, as_json=as_json, conf=conf, quiet=quiet)
    return _run_inline(dates, settings, as_json, conf)


def _run_inline(
    dates: list[str], settings: Settings, as_json: bool, conf: dict[str, Any] | None = None
) -> int:
    """The inline path: each night in one process (``airflow dags test``), its log in runs/dt=D."""
    from reelrec.airflow_local import run_dag, task_instances
    from reelrec.report import format_night, night_summary

    summaries: list[dict[str, Any]] = []
    failed = None
    for date in dates:
        print(f"[reelrec] running reelrec_nightly for dt={date} inline (airflow dags test) ...", flush=True)
        outcome = run_dag(date, settings, conf=conf)
        summary = night_summary(date, settings, task_instances(date, settings))
        summary["wall_seconds"] = round(outcome.seconds, 1)
        summaries.append(summary)
        if not as_json:
            print(format_night(summary))
            print(f"  wall time: {outcome.seconds:.1f}s   log: {outcome.log_path}", flush=True)
        if not outcome.succeeded:
            failed = outcome
            break
    if as_json:
        print(json.dumps(summaries, indent=2, default=str))
    if failed is not None:
        print(f"[reelrec] dt={failed.date} FAILED; see {failed.log_path}", file=sys.stderr)
        _print_failure_excerpt(failed.log_path)
        return 1
    return 0


def _print_failure_excerpt(log_path: Any) -> None:
    lines = log_path.read_text(errors="replace").splitlines()
    interesting = [line for line in lines if "Error" in line or "error" in line or "FAILED" in line]
    for line in interesting[-8:]:
        print(f"    {line[:400]}", file=sys.stderr)


def _locked(settings: Settings, command: str, dates: list[str], run: Callable[[], int]) -> int:
    """``run()`` while holding the home's run lock (:mod:`reelrec.run_lock`); refused: exit 75."""
    from reelrec import run_lock

    try:
        with run_lock.hold(settings, command, dates):
            return int(run())
    except run_lock.RunLockedError as err:
        print(f"[reelrec] refused: {err}", file=sys.stderr)
        return run_lock.EXIT_LOCKED


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    conf = {"force_publish": True} if args.force_publish else None
    dates = _dates(args.date, args.to)

    def run() -> int:  # under the lock: another run of the home is named first
        if not _drops_landed(dates, settings):
            return 1
        return run_nights(dates, settings, as_json=args.json, inline=args.inline, conf=conf, quiet=args.quiet)

    return _locked(settings, "run", dates, run)


def _drops_landed(dates: list[str], settings: Settings) -> bool:
    """Whether every night's landing drops are complete; if not, say which and what to run, at once.

    A manual night checks its drops once and fails at ``check_landing`` (the DAG's rule); saying so
    before the stack starts spares a minute and names the next step.
    """
    from reelrec.landing import format_missing, missing_drops

    incomplete = {date: missing for date in dates if (missing := missing_drops(date, settings))}
    for date, missing in incomplete.items():
        print(f"[reelrec] cannot run dt={date}: {format_missing(date, missing)}", file=sys.stderr)
    if incomplete:
        first, last = dates[0], dates[-1]
        print(
            "[reelrec] next: land those drops (data files, then the _SUCCESS marker), or write a "
            f"synthetic world for these dates: .venv/bin/reelrec generate --preset tiny --start {first} "
            f"--days {len(dates)}; then .venv/bin/reelrec run --date {first}"
            + (f" --to {last}" if last != first else ""),
            file=sys.stderr,
        )
    return not incomplete


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.airflow_local import task_instances
    from reelrec.report import format_night, night_summary

    summaries = []
    for date in _dates(args.date, args.to):
        try:
            tasks = task_instances(date, settings)
        except Exception:  # noqa: BLE001 - no Airflow DB yet: summarize the lake alone
            tasks = []
        summaries.append(night_summary(date, settings, tasks))
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
    else:
        print("\n".join(format_night(s) for s in summaries))
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.cli_format import format_features
    from reelrec.feast_store import online_features

    if not (args.user or args.video or args.creator):
        raise SystemExit("give at least one of --user, --video, --creator")
    features = online_features(settings, user_id=args.user, video_id=args.video, creator_id=args.creator)
    print(json.dumps(features, indent=2, default=str) if args.json else format_features(features))
    return 0


def _explain(settings: Settings, recs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    from reelrec.cli_results import explain

    return explain(settings, recs)


def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.cli_format import format_recommendations
    from reelrec.cli_models import serving_line
    from reelrec.serving import recommend

    if args.k is not None and args.k < 1:
        raise SystemExit(f"--k must be >= 1, got {args.k}")
    recs = recommend(settings, args.user, k=args.k)
    answered = [r for r in recs if r["found"] or r.get("fallback")]
    version, line = serving_line(settings)
    why = _explain(settings, answered) if args.explain else {}
    if args.json:
        keys = ("user_id", "model_version", "generated_at", "items", "found", "fallback")
        shown: list[dict[str, Any]] = [
            {**{key: r.get(key) for key in keys}, "serving_version": version} for r in answered
        ]
        for r in shown:
            if args.explain:
                r["sources"] = why.get(str(r["user_id"]), {})
        if shown:
            print(json.dumps(shown[0] if len(args.user) == 1 else shown, indent=2))
    else:
        print("\n\n".join([line, *(format_recommendations(r, why.get(r["user_id"])) for r in answered)]))
    for r in recs:
        if not r["found"] and not r.get("fallback"):
            print(f"no candidates in the Feast online store for user {r['user_id']}", file=sys.stderr)
        elif not r["found"]:
            print(f"user {r['user_id']} has no list of their own: served the default list", file=sys.stderr)
    return 0 if len(answered) == len(recs) else 1


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.report import format_status, status

    runs = status(settings, limit=args.last)
    print(json.dumps(runs, indent=2, default=str) if args.json else format_status(runs))
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from reelrec.validation import ValidationError, gate

    try:
        facts = gate(args.suite, args.date, settings)
    except ValidationError as err:
        from reelrec.nights import next_step

        print(str(err), file=sys.stderr)
        print(f"[reelrec] next: {next_step(f'validate_{args.suite}', args.date)}", file=sys.stderr)
        return 1
    print(json.dumps(facts, indent=2, default=str))
    return 0


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    """Start (or reuse) the stack and print where the UI is; `reelrec stop` stops it."""
    from reelrec import services
    from reelrec.airflow_local import DAG_ID, api_url

    try:
        services.up(settings)
    except services.ServiceError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"Airflow UI: {api_url(settings)}/dags/{DAG_ID}  (AIRFLOW_HOME={settings.airflow_home})")
    print("`reelrec stop` stops it.")
    return 0


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    """`reelrec services up|down|status`: the processes of the profile's stack."""
    from reelrec import services

    if args.action == "up":
        try:
            result = services.up(settings)
        except services.ServiceError as err:
            print(str(err), file=sys.stderr)
            return 1
        print(
            json.dumps(result)
            if args.json
            else f"stack up in {result['seconds']}s: started {', '.join(result['started']) or 'nothing'}; "
            f"already running {', '.join(result['running']) or '-'}"
        )
        return 0
    if args.action == "down":
        stopped = services.down(settings)
        print(
            json.dumps({"stopped": stopped})
            if args.json
            else f"stopped: {', '.join(stopped) or 'nothing was running'}"
        )
        return 0
    states = services.status(settings)
    if args.json:
        print(json.dumps([s.as_dict() for s in states], indent=2))
    else:
        for s in states:
            ports = ",".join(str(p) for p in s.ports) or "-"
            state = "running" if s.running else "stopped"
            print(f"{s.name:<22} {state:<8} pid {s.pid or '-':<8} ports {ports:<12} {s.log}")
    return 0


def cmd_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stop everything `run`, `ui` and `services up` started."""
    from reelrec import services

    stopped = services.down(settings)
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate a world, run every night through the scheduler, and show where to look.

    The stack is stopped at the end when the demo started it (``--keep-running`` keeps it up).
    Like ``run``, the demo holds the home's run lock from the generation to its end.
    """
    from synthetic_world import generate

    dates = _dates(args.start, add_days(args.start, args.days - 1))
    return _locked(settings, "demo", dates, lambda: _demo(args, settings, dates, generate))


def _demo(args: argparse.Namespace, settings: Settings, dates: list[str], generate: Any) -> int:
    from reelrec import services
    from reelrec.cli_results import show_results, task_totals

    timings: dict[str, float] = {}
    started = time.perf_counter()
    print(f"[reelrec] generating the {args.preset} world: {args.days} days from {args.start}", flush=True)
    generate(settings, args.preset, args.start, args.days, seed=args.seed)
    timings["generate"] = time.perf_counter() - started
    was_up = any(s.running for s in services.status(settings)) if not args.inline else True
    started = time.perf_counter()
    try:
        code = run_nights(dates, settings, inline=args.inline)
    finally:
        if not was_up and not args.keep_running:
            print(f"[reelrec] stopped the stack it started: {', '.join(services.down(settings)) or '-'}")
    timings["nightly runs"] = time.perf_counter() - started
    print("\n[reelrec] stage wall times: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    print(task_totals(dates, settings))
    if code == 0:
        code = show_results(dates, settings)
    return code


def _add_run_parser(sub: Any) -> None:
    """``reelrec run --date D [--to D2] [--json|--quiet] [--inline] [--force-publish]``."""
    p = sub.add_parser("run", help="run the nightly DAG through the Airflow scheduler for each date in order")
    p.add_argument("--date", type=cli_date, required=True)
    p.add_argument("--to", type=cli_date, default=None, help="last date (inclusive)")
    p.add_argument("--json", action="store_true", help="the nights' summaries as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress: each night's outcome and errors only")
    p.add_argument(
        "--inline", action="store_true", help="one process per night (airflow dags test), to debug"
    )
    p.add_argument(
        "--force-publish",
        action="store_true",
        help="publish even when the promotion gate would hold a night (recorded as forced)",
    )
    p.set_defaults(func=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelrec", description=__doc__.split("\n")[0])
    parser.add_argument("--home", default=None, help="REELREC_HOME (default: env or ./.reelrec)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic short-video world into the landing zone")
    p.add_argument("--preset", choices=["tiny", "small", "medium"], default="tiny")
    p.add_argument("--start", type=cli_date, required=True)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_generate)

    _add_run_parser(sub)

    p = sub.add_parser("summary", help="rows, quarantine, validation and task times of past nights")
    p.add_argument("--date", type=cli_date, required=True)
    p.add_argument("--to", type=cli_date, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("features", help="print online features from the Feast online store")
    p.add_argument("--user")
    p.add_argument("--video")
    p.add_argument("--creator")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("recommend", help="print users' published candidates from the Feast online store")
    p.add_argument("--user", action="append", required=True, help="user id (repeat for several users)")
    p.add_argument("--k", type=int, default=None, help="show at most the k best items per user")
    p.add_argument("--json", action="store_true")
    p.add_argument("--explain", action="store_true", help="show which candidate sources proposed each video")
    p.set_defaults(func=cmd_recommend)

    for subcommands in (cli_models, cli_housekeep, cli_report):  # registered by their own modules
        subcommands.add_parsers(sub)

    p = sub.add_parser("status", help="recent nightly runs: state, task times, row counts, metrics")
    p.add_argument("--last", type=int, default=7, help="how many logical dates (newest first)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("validate", help="run one Great Expectations suite on one date")
    p.add_argument("--suite", choices=["bronze", "features", "outputs"], required=True)
    p.add_argument("--date", type=cli_date, required=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("ui", help="start (or reuse) the stack and print the Airflow UI's address")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("services", help="start, stop or show the processes of the profile's stack")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("stop", help="stop everything run/ui/services up started (= services down)")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("demo", help="generate a world and run every night (what `make run` does)")
    p.add_argument("--preset", choices=["tiny", "small", "medium"], default="small")
    p.add_argument("--start", type=cli_date, default="2026-11-01")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--inline", action="store_true", help="run the nights inline (airflow dags test)")
    p.add_argument("--keep-running", action="store_true", help="leave the stack (and the UI) up at the end")
    p.set_defaults(func=cmd_demo)
    return parser


def check_path_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as a usage error naming the argument, any argument that would name a path outside
    ``REELREC_HOME``.

    Dates are checked by their type (:func:`reelrec.dates.cli_date`: ``YYYY-MM-DD`` only), presets
    and suites by their choices; ``rollback --to`` names a release record file
    (``models/releases/<version>.json``), so it must be a plain name: no ``/``, ``\\`` or ``..``.
    """
    version = getattr(args, "to", None) if args.command == "rollback" else None
    if version is not None and (not SAFE_NAME.fullmatch(version) or ".." in version):
        parser.error(
            f"argument --to: model version {version!r} is not a plain name "
            "(letters, digits and ._@+- only, no '..'); see `reelrec models list`"
        )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_path_arguments(parser, args)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return int(args.func(args, Settings.from_env(args.home)))


def entry() -> None:
    """The ``reelrec`` console script: :func:`main`, then exit without the interpreter's teardown.

    Once the command has returned (its locks released, files closed, output flushed here), the
    native libraries loaded on the way (pyarrow, delta-rs, duckdb, grpc) are not given the chance to
    abort the exit: one ``reelrec run`` whose night had succeeded was seen to die at teardown with
    ``terminate called without an active exception`` (exit status 134), which a script or a
    scheduler reads as a failed night. The exit status is the command's own.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
