"""The main job: read every stream through PyAirbyte into a DuckDB file, then answer a few questions from it.

    bash scripts/demo.sh                               # the bundled simulator, into output/simulator.duckdb
    bash scripts/demo.sh --config secrets/config.json  # a real Klaviyo account, into output/klaviyo.duckdb
    bash scripts/demo.sh --fresh                       # a new database rather than continuing the last one

PyAirbyte (in its own environment, .venv-pyairbyte) runs the connector into its DuckDB cache at our path. The
file keeps the records and PyAirbyte's state across runs, so the next run reads only what changed. The answers
are SQL on that file: events per metric per day (the last 7 UTC days), revenue per flow (flow_values_reports, or
metric_aggregates rows by $attributed_flow where the reports are not offered) and list sizes (list_memberships).

The simulator serves the account of seed SIMULATOR_SEED as of SIMULATOR_NOW, and the connector's clock is pinned
there too, so the numbers are the same on every machine and every day, and a second run finds nothing new: it
reads again only the full-refresh streams and what incremental streams re-read on purpose (the events' lookback,
the reports' re-read window), and the database gains no rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from integration_tests.connector_cli import CONNECTOR  # noqa: E402
from integration_tests.klaviyo_sim import FULL_ACCESS_KEY  # noqa: E402
from integration_tests.klaviyo_sim.data import METRICS, make_id  # noqa: E402
from source_klaviyo.clock import NOW_VARIABLE, format_klaviyo_datetime, parse_klaviyo_datetime  # noqa: E402
from source_klaviyo.streams.reports import REPORT_CLASSES  # noqa: E402

SIMULATOR_SEED = 1
SIMULATOR_NOW = "2026-12-01T00:00:00Z"
PYAIRBYTE_PYTHON = ROOT / ".venv-pyairbyte" / "bin" / "python"  # made by scripts/setup_pyairbyte.sh
READER = ROOT / "scripts" / "read_with_pyairbyte.py"
PYAIRBYTE_ENVIRONMENT = {
    "AIRBYTE_OFFLINE_MODE": "1",  # the connector is our executable: nothing to look up in Airbyte's registry
    "DO_NOT_TRACK": "1",  # PyAirbyte sends usage telemetry unless told not to
    "PYTHONWARNINGS": "ignore::FutureWarning",  # Google's clients PyAirbyte imports warn of Python versions' ends
}
TOP = 10  # rows an answer shows, largest first


@dataclass
class Answer:
    """A question's answer as a table; a str instead of one says why it could not be answered."""

    title: str
    columns: Sequence[str]  # the label's column, then one per number
    rows: list[tuple[Any, ...]]  # (label, number, ...), in the order shown
    number_format: str = "{:,}"

    def lines(self) -> list[str]:
        """The title, then the columns and the first TOP rows, labels to the left, numbers to the right."""
        cells = [list(self.columns)]
        cells += [[str(label), *(self.number_format.format(n) for n in numbers)] for label, *numbers in self.rows[:TOP]]
        widths = [max(len(row[column]) for row in cells) for column in range(len(self.columns))]
        lines = [self.title]
        for row in cells:
            numbers = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
            lines.append("  " + "  ".join([row[0].ljust(widths[0]), *numbers]))
        if len(self.rows) > TOP:
            lines.append(f"  ... {len(self.rows) - TOP} more")
        return lines


def stream_tables(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables holding streams' records (PyAirbyte's own, named _airbyte_*, left out)."""
    found = connection.execute(
        "select table_name from information_schema.tables where not starts_with(table_name, '_airbyte') order by 1"
    ).fetchall()
    return [name for (name,) in found]


def table_rows(database: Path) -> dict[str, int]:
    """Rows per stream table; {} before the first read."""
    if not database.exists():
        return {}
    with duckdb.connect(str(database), read_only=True) as connection:
        return {
            table: connection.execute(f'select count(*) from "{table}"').fetchone()[0]
            for table in stream_tables(connection)
        }


def events_per_metric_per_day(connection: duckdb.DuckDBPyConnection, now: datetime) -> Answer | str:
    """Event counts per metric for each of the last 7 whole UTC days before `now`, the busiest metrics first."""
    if "events" not in stream_tables(connection):
        return "Events per metric per day: the events stream was not read."
    today = now.astimezone(timezone.utc).date()
    days = [today - timedelta(days=back) for back in range(7, 0, -1)]
    counts = connection.execute(
        """
        select coalesce(metric_name, metric_id), datetime::date, count(*)
        from events
        where datetime >= ? and datetime < ?
        group by all
        """,
        [days[0], today],
    ).fetchall()
    per_day: dict[str, dict[date, int]] = defaultdict(dict)
    for metric, day, count in counts:
        per_day[metric][day] = count
    rows = [(metric, *(found.get(day, 0) for day in days), sum(found.values())) for metric, found in per_day.items()]
    rows.sort(key=lambda row: (-row[-1], row[0]))
    columns = ["metric", *(f"{day:%m-%d}" for day in days), "total"]
    return Answer(f"Events per metric per day (UTC), {days[0]} to {days[-1]}", columns, rows)


def revenue_per_flow_from_reports(connection: duckdb.DuckDBPyConnection) -> Answer | None:
    """The running year's conversion value per flow from flow_values_reports: Klaviyo's own numbers, as its UI
    shows them. Only the conversion metric of the latest read counts, should the config have changed it."""
    if "flow_values_reports" not in stream_tables(connection):
        return None
    latest = """
        select * from flow_values_reports
        where start = (select max(start) from flow_values_reports)
          and conversion_metric_id = (
              select conversion_metric_id from flow_values_reports order by _airbyte_extracted_at desc limit 1)
    """
    period = connection.execute(
        f"""
        select min(start), max("end"), any_value(timezone), any_value(coalesce(metrics.name, conversion_metric_id))
        from ({latest}) left join metrics on metrics.id = conversion_metric_id
        """
    ).fetchone()
    if period is None or period[0] is None:
        return None
    start, end, zone, metric = period
    rows = connection.execute(
        f"""
        select coalesce(flows.name, flow_id), sum(conversion_value)
        from ({latest}) left join flows on flows.id = flow_id
        group by all
        order by 2 desc, 1
        """
    ).fetchall()
    title = f"Revenue per flow, {start:%Y-%m-%d} to {end:%Y-%m-%d %H:%M} {zone} (flow_values_reports: {metric} value)"
    return Answer(title, ["flow", "revenue"], rows, "{:,.2f}")


def revenue_per_flow_from_aggregates(connection: duckdb.DuckDBPyConnection) -> Answer | None:
    """Summed sum_value per flow of the metric_aggregates rows grouped by $attributed_flow (the first such query by
    name, should the config hold several); "" is value no flow was credited with."""
    if "metric_aggregates" not in stream_tables(connection):
        return None
    by_flow = """
        select *, json_extract_string(dimensions, '$."$attributed_flow"') as flow_id
        from metric_aggregates
        where json_exists(dimensions, '$."$attributed_flow"') and sum_value is not null
          and query_name = (
              select min(query_name) from metric_aggregates where json_exists(dimensions, '$."$attributed_flow"'))
    """
    query = connection.execute(
        f"""
        select any_value(query_name), count(distinct date), any_value(interval), min(date), any_value(timezone),
               any_value(coalesce(metrics.name, metric_id))
        from ({by_flow}) left join metrics on metrics.id = metric_id
        """
    ).fetchone()
    if query is None or query[0] is None:
        return None
    name, intervals, interval, first, zone, metric = query
    rows = connection.execute(
        f"""
        select case when flow_id = '' then '(no flow)' else coalesce(flows.name, flow_id) end, sum(sum_value)
        from ({by_flow}) left join flows on flows.id = flow_id
        group by all
        order by 2 desc, 1
        """
    ).fetchall()
    title = (
        f"Revenue per flow, {intervals} {interval}s from {first:%Y-%m-%d} {zone} "
        f"(metric_aggregates query {name!r}: {metric} sum_value)"
    )
    return Answer(title, ["flow", "revenue"], rows, "{:,.2f}")


def revenue_per_flow(connection: duckdb.DuckDBPyConnection) -> Answer | str:
    """From the flow reports when they were read (Klaviyo's own attribution and conversion metric), else from a
    metric_aggregates query by flow (an older revision, an account without a conversion metric)."""
    for source in (revenue_per_flow_from_reports, revenue_per_flow_from_aggregates):
        answer = source(connection)
        if answer:
            return answer
    return (
        "Revenue per flow: neither flow_values_reports (revision 2026-07-15, with a conversion metric) nor "
        "metric_aggregates by $attributed_flow was read."
    )


def list_sizes(connection: duckdb.DuckDBPyConnection) -> Answer | str:
    """Members per list, the largest lists first."""
    if "list_memberships" not in stream_tables(connection):
        return "List sizes: the list_memberships stream was not read."
    rows = connection.execute(
        """
        select coalesce(lists.name, list_id), count(*)
        from list_memberships left join lists on lists.id = list_id
        group by all
        order by 2 desc, 1
        """
    ).fetchall()
    # Klaviyo keeps no trace of removals, so an incremental read only adds who joined.
    return Answer("List sizes (list_memberships; members who left stay until --fresh)", ["list", "members"], rows)


def revenue_by_flow_query(now: datetime) -> dict[str, Any]:
    """The simulated account's Placed Order revenue by flow, month by month, over the 12 whole months before `now`:
    the metric_aggregates query the demo reads (the original connector's example)."""
    end = now.replace(day=1, hour=0, minute=0, second=0)
    start = end.replace(year=end.year - 1)
    attributes = {
        "metric_id": make_id(1, [name for name, _, _ in METRICS].index("Placed Order"), seed=SIMULATOR_SEED),
        "measurements": ["sum_value", "count"],
        "by": ["$attributed_flow"],
        "interval": "month",
        "timezone": "UTC",
        "filter": [
            f"greater-or-equal(datetime,{start:%Y-%m-%dT%H:%M:%S})",
            f"less-than(datetime,{end:%Y-%m-%dT%H:%M:%S})",
        ],
    }
    return {"data": {"type": "metric-aggregate", "attributes": attributes}}


def simulator_config(url: str, report_days: int | None) -> dict[str, Any]:
    """Every stream offered: a week of events_custom_dates, a metric_aggregates query, the retired v1 campaigns
    (the simulator still serves them); the reports' first sync over `report_days` when given."""
    now = parse_klaviyo_datetime(SIMULATOR_NOW)
    config: dict[str, Any] = {
        "api_key": FULL_ACCESS_KEY,
        "api_url": url,
        "events_custom_dates": {
            "start": format_klaviyo_datetime(now - timedelta(days=8)),
            "end": format_klaviyo_datetime(now - timedelta(days=1)),
        },
        "metric_aggregates": json.dumps(revenue_by_flow_query(now)),
        "legacy_v1_campaigns": True,
    }
    if report_days is not None:
        config["backfill_window_days"] = dict.fromkeys((report.name for report in REPORT_CLASSES), report_days)
    return config


@contextmanager
def simulator(events: int, profiles: int) -> Iterator[str]:
    """The bundled simulator on a free loopback port, as of SIMULATOR_NOW; yields its URL."""
    command = [sys.executable, "-m", "integration_tests.klaviyo_sim", "--port", "0", "--seed", str(SIMULATOR_SEED)]
    command += ["--now", SIMULATOR_NOW, "--events", str(events), "--profiles", str(profiles)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline().strip()
        url = re.search(r"http://\S+", banner)
        if url is None:
            sys.exit("the simulator did not start")
        print(f"== {banner}")
        yield url.group()
    finally:
        process.terminate()
        process.wait(10)
        print("== simulator stopped")


def read(config: dict[str, Any], database: Path, environment: dict[str, str]) -> None:
    """Run PyAirbyte's read into `database`, in PyAirbyte's environment; its progress goes to the terminal."""
    continuing = "continuing from the state it holds" if database.exists() else "a new database"
    print(f"== reading every stream through PyAirbyte into {database} ({continuing})", flush=True)
    with tempfile.TemporaryDirectory() as folder:  # private to us: the config holds the key
        config_file = Path(folder) / "config.json"
        config_file.write_text(json.dumps(config))
        command = [PYAIRBYTE_PYTHON, READER, config_file, CONNECTOR, database, folder]
        finished = subprocess.run(command, env={**os.environ, **PYAIRBYTE_ENVIRONMENT, **environment})
    if finished.returncode:
        sys.exit(finished.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a real account's config.json; without it the simulator is read")
    parser.add_argument(
        "--database", type=Path, help="the DuckDB file (default output/klaviyo.duckdb, output/simulator.duckdb)"
    )
    parser.add_argument("--fresh", action="store_true", help="delete the database first: a first sync again")
    simulated = parser.add_argument_group("the simulated account (without --config)")
    simulated.add_argument("--events", type=int, default=50_000, help="events over its last 60 days (default 50,000)")
    simulated.add_argument("--profiles", type=int, default=2_000, help="profiles (default 2,000)")
    simulated.add_argument(
        "--report-days",
        type=int,
        help="days the report streams' first sync reads (default: the connector's year, at Klaviyo's 2 requests a "
        "minute about 4 minutes; 30 takes one request a report)",
    )
    args = parser.parse_args()
    database = args.database or ROOT / "output" / ("klaviyo.duckdb" if args.config else "simulator.duckdb")
    if args.fresh:
        for leftover in (database, database.with_name(database.name + ".wal")):
            leftover.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    before = table_rows(database)
    if args.config:
        now = datetime.now(timezone.utc)
        read(json.loads(args.config.read_text()), database, {})
    else:
        now = parse_klaviyo_datetime(SIMULATOR_NOW)
        with simulator(args.events, args.profiles) as url:
            read(simulator_config(url, args.report_days), database, {NOW_VARIABLE: SIMULATOR_NOW})
    after = table_rows(database)
    added = sum(after.values()) - sum(before.values())
    print(f"== {database}: {len(after)} tables, {sum(after.values()):,} rows ({added:+,} this run)")
    with duckdb.connect(str(database), read_only=True) as connection:
        for answer in (
            events_per_metric_per_day(connection, now),
            revenue_per_flow(connection),
            list_sizes(connection),
        ):
            print("\n" + ("\n".join(answer.lines()) if isinstance(answer, Answer) else answer))


if __name__ == "__main__":
    main()
