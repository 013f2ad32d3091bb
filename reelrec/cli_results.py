"""What the command line shows about published results: a user's list explained by its sources
(``reelrec recommend --explain``) and the end of ``reelrec demo`` (status, releases, one user's list
with its provenance, or why none was published, and where to look further)."""

from __future__ import annotations

import sys
from typing import Any

from reelrec.settings import Settings


def explain(settings: Settings, recs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per user, per video of their answer: the candidate sources that proposed it ("two_tower#3 ...").

    Read from gold.candidate_sources of the night whose release answered (empty for the default list).
    """
    import pyarrow.compute as pc

    from reelrec import lake, releases
    from reelrec.catalog import CANDIDATE_SOURCES, MODEL_VERSION, USER_ID, VIDEO_IDS

    out: dict[str, dict[str, str]] = {}
    for rec in recs:
        release = releases.get_release(settings, rec["model_version"]) if rec.get("model_version") else None
        if not rec["found"] or release is None or not lake.exists(CANDIDATE_SOURCES, settings):
            continue
        rows = lake.read(CANDIDATE_SOURCES, settings, dates=[release.night])
        mine = pc.and_(
            pc.equal(rows.column(USER_ID), rec["user_id"]),
            pc.equal(rows.column(MODEL_VERSION), release.version),
        )
        for row in rows.filter(mine).to_pylist():
            out[rec["user_id"]] = dict(zip(row[VIDEO_IDS], row["sources"], strict=True))
    return out


def show_results(dates: list[str], settings: Settings) -> int:
    """The end of the demo: status, releases, one user's list with its provenance, where to look."""
    from reelrec import lake, releases
    from reelrec.catalog import CANDIDATES, DEFAULT_LIST_KEY
    from reelrec.cli_format import format_recommendations, format_releases
    from reelrec.cli_models import release_rows
    from reelrec.report import format_status, status
    from reelrec.serving import recommend

    print("\n[reelrec] status (reelrec status)")
    print(format_status(status(settings, limit=len(dates))))
    serving = releases.serving(settings)
    print("\n[reelrec] releases (reelrec models list)")
    print(format_releases(release_rows(settings)))
    night = serving.night if serving else dates[-1]
    user = None
    if lake.exists(CANDIDATES, settings):
        published = lake.read(CANDIDATES, settings, dates=[night], columns=["user_id"]).column(0).to_pylist()
        user = next((u for u in published if u != DEFAULT_LIST_KEY), None)
    if user is None:
        return _nothing_published(dates, settings)
    print(
        f"\n[reelrec] what a feed service reads for {user} (reelrec recommend --user {user} --k 10 --explain)"
    )
    rec = recommend(settings, [user], k=10)[0]
    print(format_recommendations(rec, explain(settings, [rec]).get(user)))
    newcomer = "u_new_today"
    print(f"\n[reelrec] a user with no list yet (reelrec recommend --user {newcomer} --k 5)")
    print(format_recommendations(recommend(settings, [newcomer], k=5)[0]))
    _show_where_to_look(dates[-1], settings, user)
    return 0


def _nothing_published(dates: list[str], settings: Settings) -> int:
    """The end of a demo whose nights all succeeded but published no list.

    The promotion gate holding every model night is a correct outcome (a model that cannot beat
    popularity must not serve), not a failure: the demo says why each night held and what to run
    to publish one anyway, and exits 0. Nothing published with no night held is an error (1).
    """
    from reelrec.report import night_gate

    held = {d: g for d in dates if (g := night_gate(d, settings)) and not g.get("publish")}
    if not held:
        print(f"\n[reelrec] no candidates were published for {dates[0]}..{dates[-1]}", file=sys.stderr)
        _show_where_to_look(dates[-1], settings, None)
        return 1
    print("\n[reelrec] no list serves yet: the promotion gate held every model night")
    for date, gate in held.items():
        print(f"  dt={date}: {gate.get('reason')}")
    last = max(held)
    print(
        "  (more nights give the models more history; to publish a held night anyway:\n"
        f"   .venv/bin/reelrec run --date {last} --force-publish)"
    )
    _show_where_to_look(dates[-1], settings, None)
    return 0


def task_totals(dates: list[str], settings: Settings) -> str:
    from reelrec.airflow_local import task_instances
    from reelrec.report import format_task_totals, night_summary

    return format_task_totals([night_summary(d, settings, task_instances(d, settings)) for d in dates])


def _show_where_to_look(date: str, settings: Settings, user: str | None) -> None:
    from reelrec.airflow_local import api_url

    user = user or "u000001"
    print(
        f"""
Where to look (REELREC_HOME={settings.home}):
  landing drops      {settings.landing}
  Delta tables       {settings.lake}/{{bronze,silver,gold}}/<table>
  run manifests      {settings.runs}/dt=<date>/manifest.json (+ metrics.json, validation/, airflow.log)
  task logs          {settings.airflow_home}/logs/dag_id=reelrec_nightly/run_id=nightly__<date>/
  models             {settings.models}/two_tower/<model_version>/ (weights, config, metrics, ANN index)
  Feast              {settings.feast}
  Airflow UI         {api_url(settings)}/dags/reelrec_nightly   (.venv/bin/reelrec ui starts it)
  stop everything    .venv/bin/reelrec stop   (services: .venv/bin/reelrec services status)
  runs and metrics   .venv/bin/reelrec status [--json]
  model versions     .venv/bin/reelrec models list   (.venv/bin/reelrec rollback --to VERSION)
  recommendations    .venv/bin/reelrec recommend --user {user} --k 10 --json
  online features    .venv/bin/reelrec features --user {user}
  feature server     .venv/bin/feast -c {settings.feast} serve   (POST /get-online-features)
  a night again      .venv/bin/reelrec run --date {date}   (--inline: in one process, to debug)
  one job alone      .venv/bin/python -m models.score --date {date}"""
    )
    _open_next(date, settings, user)


def _open_next(date: str, settings: Settings, user: str | None) -> None:
    """The last lines of the demo: the night's report, the UI and one user's list."""
    from reelrec.airflow_local import api_url
    from reelrec.report_html import REPORT_FILE, write_report

    report, index = settings.run_dir(date) / REPORT_FILE, settings.runs / "index.html"
    if not report.exists():  # the DAG's report task writes it; a night without one gets it here
        write_report(date, settings)
    print(
        f"""
[reelrec] open next:
  the nightly report   {report}
                       (every night: {index}; .venv/bin/reelrec report --date {date} --open)
  the Airflow UI       .venv/bin/reelrec ui   then {api_url(settings)}/dags/reelrec_nightly
  one user's list      .venv/bin/reelrec recommend --user {user or "u000001"} --k 10"""
    )
