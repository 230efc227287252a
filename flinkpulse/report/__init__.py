"""`flinkpulse report`: the findings of a period and the system's performance, as PDF and HTML.

:func:`build` turns the rows of :mod:`flinkpulse.report.queries` (ClickHouse) and
:mod:`flinkpulse.report.perf` (Flink REST, bench results) into a :class:`Report`: sections of
paragraphs, tables and charts whose every number is a query's, only formatted here.
:mod:`flinkpulse.report.render` writes that one model as PDF (reportlab) and HTML.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flinkpulse import quality
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.report import charts, perf
from flinkpulse.report import queries as q

Period = q.Period


@dataclass
class Table:
    """A titled table of formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    """A chart (PNG) with its caption."""

    title: str
    png: bytes


Block = str | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    period: Period
    generated_at: datetime
    database: str
    #: the headline figures: (label, formatted value)
    summary: list[tuple[str, str]]
    sections: list[Section]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]

    def to_dict(self) -> dict[str, Any]:
        """The report without its chart images (JSON: what --json writes, what tests read)."""

        def block(b: Block) -> Any:
            if isinstance(b, Table):
                return {"table": b.title, "columns": b.columns, "rows": b.rows}
            if isinstance(b, Figure):
                return {"figure": b.title}
            return b

        return {
            "title": self.title,
            "from": fmt_time(self.period.start),
            "to": fmt_time(self.period.end),
            "generated_at": fmt_time(self.generated_at),
            "database": self.database,
            "summary": [list(x) for x in self.summary],
            "sections": [
                {"title": s.title, "blocks": [block(b) for b in s.blocks]} for s in self.sections
            ],
        }


# -- formatting (the only place numbers become text) ------------------------------------------


def fmt_int(n: Any) -> str:
    return "—" if n is None else f"{int(n):,}"


def fmt_num(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{float(x):,.{digits}f}"


def fmt_pct(rate: Any) -> str:
    """A 0..1 rate as percent with two decimals."""
    return "—" if rate is None else f"{100 * float(rate):.2f} %"


def fmt_time(t: datetime | None) -> str:
    if t is None:
        return "—"
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_bytes(n: Any) -> str:
    if n is None:
        return "—"
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if x < 1024 or unit == "GiB":
            return f"{x:,.0f} {unit}" if unit == "B" else f"{x:,.1f} {unit}"
        x /= 1024
    return f"{x:,.1f} GiB"


def fmt_duration(s: Any) -> str:
    if s is None:
        return "—"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


# -- sections ----------------------------------------------------------------------------------


def _series(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, list[float]]:
    """{key value: values per bucket (0 where missing)} over the rows' sorted buckets."""
    buckets = sorted({r["bucket"] for r in rows})
    idx = {b: i for i, b in enumerate(buckets)}
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
    for r in rows:
        out[str(r[key])][idx[r["bucket"]]] = float(r[value])
    return dict(sorted(out.items()))


def _incidents(ch: Any, p: Period) -> tuple[Section, int]:
    s = Section("Incidents by rule")
    by_rule = q.incidents_by_rule(ch, p)
    total = sum(int(r["incidents"]) for r in by_rule)
    if not by_rule:
        s.blocks.append("No incidents in this period.")
        return s, 0
    s.blocks.append(
        f"{fmt_int(total)} incidents from {len(by_rule)} rules. An incident is one alert per "
        "rule, entity and occurrence, in its newest state; it counts in the period of its last "
        "event."
    )
    over = q.incidents_over_time(ch, p)
    buckets = sorted({r["bucket"] for r in over})
    s.blocks.append(
        Figure(
            "Incidents over time by rule",
            charts.stacked_bars(
                buckets, _series(over, "rule", "incidents"), p.bucket_s(), "incidents"
            ),
        )
    )
    s.blocks.append(
        Table(
            "Incidents per rule",
            ["rule", "incidents", "events", "entities", "highest severity"],
            [
                [
                    r["rule"],
                    fmt_int(r["incidents"]),
                    fmt_int(r["events"]),
                    fmt_int(r["entities"]),
                    r["max_severity"],
                ]
                for r in by_rule
            ],
        )  # fmt: skip
    )
    s.blocks.append(
        Table(
            "Top entities",
            ["entity type", "entity", "incidents", "rules"],
            [
                [r["entity_type"], r["entity_id"], fmt_int(r["incidents"]), r["rules"]]
                for r in q.top_entities(ch, p)
            ],
        )
    )
    s.blocks.append(
        Table(
            "Example summaries (the latest incident of each rule)",
            ["rule", "entity", "summary"],
            [[r["rule"], r["entity_id"], r["summary"]] for r in q.example_summaries(ch, p)],
        )
    )
    return s, total


def _energy(ch: Any, p: Period) -> tuple[Section, dict[str, Any] | None]:
    s = Section("Energy: homes and appliances")
    apps = q.appliances_by_kwh(ch, p)
    homes = q.homes_by_kwh(ch, p)
    if not apps:
        s.blocks.append("No energy readings in this period.")
    else:
        top = apps[0]
        s.blocks.append(
            f"The biggest consumer was {top['appliance']} with {fmt_num(top['kwh'], 3)} kWh "
            f"across {fmt_int(top['homes'])} homes."
        )
        s.blocks.append(
            Figure(
                "Appliances by energy (kWh)",
                charts.bars([r["appliance"] for r in apps], [r["kwh"] for r in apps], "kWh"),
            )
        )
        s.blocks.append(
            Table(
                "Appliances ranked by kWh",
                ["rank", "appliance", "kWh", "homes", "max power (W)"],
                [
                    [
                        str(i),
                        r["appliance"],
                        fmt_num(r["kwh"], 3),
                        fmt_int(r["homes"]),
                        fmt_num(r["max_power_w"], 0),
                    ]
                    for i, r in enumerate(apps, 1)
                ],
            )  # fmt: skip
        )
        s.blocks.append(
            Table(
                "Homes ranked by kWh",
                ["rank", "home", "kWh", "max power (W)"],
                [
                    [str(i), r["home_id"], fmt_num(r["kwh"], 3), fmt_num(r["max_power_w"], 0)]
                    for i, r in enumerate(homes, 1)
                ],
            )
        )
    alerts = q.rule_incidents(ch, p, q.ENERGY_RULE)
    if alerts:
        s.blocks.append(
            Table(
                "Energy alerts (energy_over_threshold)",
                ["home", "severity", "last event", "summary"],
                [
                    [r["entity_id"], r["severity"], fmt_time(r["last_event_time"]), r["summary"]]
                    for r in alerts
                ],
            )
        )
    else:
        s.blocks.append("No energy alerts in this period.")
    return s, (apps[0] if apps else None)


def _climate(ch: Any, p: Period) -> Section:
    s = Section("Climate per room")
    now = q.climate_now(ch, p)
    hist = q.climate_history(ch, p)
    if not now and not hist:
        s.blocks.append("No temperature or humidity readings.")
        return s
    temps = q.temperature_over_time(ch, p)
    if temps:
        series: dict[str, tuple[list[datetime], list[float]]] = {}
        for r in temps:
            xs, ys = series.setdefault(r["room"], ([], []))
            xs.append(r["bucket"])
            ys.append(float(r["mean_value"]))
        top = dict(sorted(series.items())[:8])
        s.blocks.append(Figure("Mean temperature per room (°C)", charts.lines(top, "°C")))
    if now:
        s.blocks.append(
            Table(
                "Current readings (the last before the period's end)",
                ["home", "room", "sensor", "value", "at"],
                [
                    [
                        r["home_id"],
                        r["room"],
                        r["sensor_type"],
                        f"{fmt_num(r['value'], 1)} {r['unit']}",
                        fmt_time(r["updated_at"]),
                    ]
                    for r in now
                ],
            )  # fmt: skip
        )
    if hist:
        s.blocks.append(
            Table(
                "Over the period",
                ["home", "room", "sensor", "mean", "min", "max", "samples"],
                [
                    [
                        r["home_id"],
                        r["room"],
                        r["sensor_type"],
                        fmt_num(r["mean_value"], 1),
                        fmt_num(r["min_value"], 1),
                        fmt_num(r["max_value"], 1),
                        fmt_int(r["total_samples"]),
                    ]
                    for r in hist
                ],
            )  # fmt: skip
        )
    return s


def _gaming(ch: Any, p: Period) -> Section:
    s = Section("Gaming: K/D leaders and cheaters")
    leaders = q.kd_leaders(ch, p)
    cheats = q.cheaters(ch, p)
    if not leaders:
        s.blocks.append("No player statistics in this period.")
    else:
        s.blocks.append(
            f"{leaders[0]['player_id']} leads with a K/D of {fmt_num(leaders[0]['kd_ratio'])} "
            f"({fmt_int(leaders[0]['kills'])} kills, {fmt_int(leaders[0]['deaths'])} deaths). "
            "Players flagged by impossible_kill_rate are left out of the ranking."
        )
        s.blocks.append(
            Figure(
                "K/D ratio of the leaders",
                charts.bars(
                    [r["player_id"] for r in leaders], [r["kd_ratio"] for r in leaders], "K/D"
                ),
            )
        )
        s.blocks.append(
            Table(
                "K/D leaders (cheaters excluded)",
                ["rank", "player", "team", "kills", "deaths", "K/D"],
                [
                    [
                        str(i),
                        r["player_id"],
                        r["team"],
                        fmt_int(r["kills"]),
                        fmt_int(r["deaths"]),
                        fmt_num(r["kd_ratio"]),
                    ]
                    for i, r in enumerate(leaders, 1)
                ],
            )  # fmt: skip
        )
    if cheats:
        s.blocks.append(
            Table(
                "Flagged cheaters (impossible_kill_rate)",
                ["player", "incidents", "kills", "deaths", "K/D", "latest summary"],
                [
                    [
                        r["player_id"],
                        fmt_int(r["incidents"]),
                        fmt_int(r["kills"]),
                        fmt_int(r["deaths"]),
                        fmt_num(r["kd_ratio"]),
                        r["summary"],
                    ]
                    for r in cheats
                ],
            )  # fmt: skip
        )
    else:
        s.blocks.append("No player was flagged as a cheater in this period.")
    return s


def _web(ch: Any, p: Period) -> tuple[Section, dict[str, Any]]:
    s = Section("Web traffic")
    tot = q.web_totals(ch, p)
    if not tot["total_requests"]:
        s.blocks.append("No web requests in this period.")
        return s, tot
    s.blocks.append(
        f"{fmt_int(tot['total_requests'])} requests, {fmt_int(tot['total_errors'])} errors "
        f"(5xx): error rate {fmt_pct(tot['error_rate'])}. The p95 latency of a path over the "
        "period is the request-weighted p95 of its windows' own p95s."
    )
    over = q.web_over_time(ch, p)
    s.blocks.append(
        Figure(
            "Requests over time",
            charts.lines({"requests": ([r["bucket"] for r in over], [r["requests"] for r in over])}, "requests"),
        )
    )  # fmt: skip
    s.blocks.append(
        Table(
            "Per path",
            ["path", "requests", "errors", "error rate", "p95 latency (ms)"],
            [
                [
                    r["path"],
                    fmt_int(r["total_requests"]),
                    fmt_int(r["total_errors"]),
                    fmt_pct(r["error_rate"]),
                    fmt_num(r["latency_p95"], 1),
                ]
                for r in q.web_paths(ch, p)
            ],
        )  # fmt: skip
    )
    s.blocks.append(
        Table(
            "Top countries",
            ["country", "requests", "clients"],
            [
                [r["country"] or "unknown", fmt_int(r["requests"]), fmt_int(r["clients"])]
                for r in q.top_countries(ch, p)
            ],
        )
    )
    sus = q.suspicious_clients(ch, p)
    if sus:
        s.blocks.append(
            Table(
                "Suspicious clients (brute_force_login incidents, then the most errors)",
                ["client", "country", "requests", "errors", "error rate", "brute-force incidents"],
                [
                    [
                        r["client_ip"],
                        r["country"] or "unknown",
                        fmt_int(r["requests"]),
                        fmt_int(r["errors"]),
                        fmt_pct(r["error_rate"]),
                        fmt_int(r["brute_force_incidents"]),
                    ]
                    for r in sus
                ],
            )  # fmt: skip
        )
    return s, tot


def _quality(cfg: Config, ch: Any, p: Period) -> Section:
    s = Section("Data quality per source")
    rows = q.source_quality(ch, p)
    if not rows:
        s.blocks.append("No data-quality samples (the loader component samples them).")
    else:
        _quality_table(s, rows)
    try:
        reasons = quality.dead_letter_reasons(
            cfg, int(p.start.timestamp() * 1000), int(p.end.timestamp() * 1000)
        )
    except Exception:  # noqa: BLE001 - librdkafka raises KafkaException subclasses or timeouts
        s.blocks.append(
            f"Dead-letter reasons: Kafka is not reachable at {cfg.kafka.bootstrap_servers}."
        )
        return s
    if reasons:
        s.blocks.append(
            Table(
                "Dead-letter reasons (records dead-lettered in the period, from dlq.<topic>)",
                ["source topic", "reason", "records"],
                [[t, r, fmt_int(n)] for t, r, n in reasons],
            )
        )
    else:
        s.blocks.append("No record was dead-lettered in this period.")
    return s


def _quality_table(s: Section, rows: list[dict[str, Any]]) -> None:
    """The per-topic counts of the period, with their share of the topic's records."""

    def share(n: Any, total: Any) -> str:
        return f"{fmt_int(n)} ({fmt_pct(n / total)})" if total else fmt_int(n)

    s.blocks.append(
        "Records that reached each source topic in the period, and how many of them were late "
        "(late.<topic>) or dead-lettered (dlq.<topic>): malformed, or from the future (event "
        "time too far ahead of the Kafka timestamp)."
    )
    s.blocks.append(
        Table(
            "Per source topic",
            [
                "source topic",
                "records",
                "late",
                "dead-lettered (malformed)",
                "dead-lettered (future)",
            ],
            [
                [
                    r["topic"],
                    fmt_int(r["records"]),
                    share(r["late"], r["records"]),
                    share(r["dead_lettered"], r["records"]),
                    share(r["future"], r["records"]),
                ]
                for r in rows
            ],
        )  # fmt: skip
    )


def _performance(cfg: Config, ch: Any, p: Period, bench_dir: Path) -> Section:
    s = Section("System performance")
    try:
        jobs = perf.flink_jobs(cfg, int(p.start.timestamp() * 1000))
    except FlinkpulseError as e:
        jobs = None
        s.blocks.append(f"Flink jobs: {e}")
    if jobs is not None and not jobs:
        s.blocks.append(f"No flinkpulse job ran on the Flink cluster at {cfg.flink.jobmanager}.")
    sampled = _job_throughput(cfg, ch, p, s)
    if jobs and not sampled:
        s.blocks.append(
            "Flink jobs as reported by the JobManager's REST API when the report was made "
            "(figures since each job started; Flink keeps no history)."
        )
        s.blocks.append(
            Table(
                "Throughput and consumer lag per job, now",
                ["job", "state", "uptime", "records in", "avg rec/s", "rec/s now", "lag (records)"],
                [
                    [
                        r["job"],
                        r["state"],
                        fmt_duration(r["uptime_s"]),
                        fmt_int(r["records_in"]),
                        fmt_num(r["avg_rate"], 1),
                        fmt_num(r["rate_now"], 1),
                        fmt_int(r["lag"]),
                    ]
                    for r in jobs
                ],
            )  # fmt: skip
        )
    if jobs:
        s.blocks.append(
            Table(
                "Checkpoints per job (since each job started, Flink REST)",
                [
                    "job",
                    "completed",
                    "failed",
                    "avg duration",
                    "max duration",
                    "avg size",
                    "max size",
                ],
                [
                    [
                        r["job"],
                        fmt_int(r["checkpoints"]),
                        fmt_int(r["checkpoints_failed"]),
                        fmt_int(r["cp_avg_ms"]) + " ms" if r["cp_avg_ms"] is not None else "—",
                        fmt_int(r["cp_max_ms"]) + " ms" if r["cp_max_ms"] is not None else "—",
                        fmt_bytes(r["cp_avg_bytes"]),
                        fmt_bytes(r["cp_max_bytes"]),
                    ]
                    for r in jobs
                ],
            )  # fmt: skip
        )
    loads = q.loader_stats(ch, p)
    if loads:
        s.blocks.append(
            Table(
                "Loader (Kafka -> ClickHouse): rows loaded in the period, rate while loading, "
                "lag from a row's time to its arrival",
                ["table", "rows", "rows/s", "lag p50", "lag p95"],
                [
                    [
                        r["table"],
                        fmt_int(r["rows"]),
                        fmt_num(r["rows"] / r["span_s"], 2) if r["span_s"] else "—",
                        fmt_duration(r["lag_p50_s"]),
                        fmt_duration(r["lag_p95_s"]),
                    ]
                    for r in loads
                ],
            )  # fmt: skip
        )
    else:
        s.blocks.append("The loader loaded no rows in this period.")
    bench = perf.newest_bench(bench_dir)
    if bench is None:
        s.blocks.append(f"No benchmark results in {bench_dir} (run `flinkpulse bench`).")
    else:
        s.blocks.append(
            f"Newest benchmark: {bench['file']}, run {bench['started']} on {bench['machine']}."
        )
        s.blocks.append(Table("Benchmark figures", ["measured", "result"], bench["figures"]))
        if bench["goals"]:
            s.blocks.append(
                Table(
                    "Benchmark goals",
                    ["goal", "measured", "met"],
                    [[g, m, "yes" if met else "no"] for g, m, met in bench["goals"]],
                )
            )
    return s


#: the columns of the period's throughput table
JOB_COLUMNS = (
    "job|samples|records in|records out|avg rec/s in|peak rec/s in|avg rec/s out|lag avg|lag max"
    "|lag last"
)


def _job_throughput(cfg: Config, ch: Any, p: Period, s: Section) -> bool:
    """The jobs' throughput and lag over the period from job_metrics (False: no samples)."""
    rows = q.job_throughput(ch, p)
    if not rows:
        s.blocks.append(
            "No job metrics were sampled in this period (the loader component samples them "
            f"every {cfg.loader.quality_interval_s:g} s into job_metrics)."
        )
        return False
    s.blocks.append(
        "Throughput and consumer lag per job over the period, from the samples the loader "
        f"component takes every {cfg.loader.quality_interval_s:g} s (job_metrics): records read "
        "from Kafka and written by the job's sinks (results, late, dead letters, duplicates) in "
        "the period, records/s read (mean and peak of the samples) and written, and the records "
        "its sources were behind the topics' ends. The loader's row: rows loaded into ClickHouse "
        "and the records it was behind on the result topics."
    )
    over = q.job_rates_over_time(ch, p)
    if over:
        series: dict[str, tuple[list[datetime], list[float]]] = {}
        for r in over:
            xs, ys = series.setdefault(r["job"], ([], []))
            xs.append(r["bucket"])
            ys.append(float(r["in_per_s"]))
        s.blocks.append(Figure("Records read per second, per job", charts.lines(series, "rec/s")))
    s.blocks.append(
        Table(
            "Throughput and consumer lag per job over the period",
            JOB_COLUMNS.split("|"),
            [
                [
                    r["job"],
                    fmt_int(r["samples"]),
                    fmt_int(r["records_in"]),
                    fmt_int(r["records_out"]),
                    fmt_num(r["in_per_s"], 1),
                    fmt_num(r["in_per_s_max"], 1),
                    fmt_num(r["out_per_s"], 1),
                    fmt_num(r["lag_avg"], 0),
                    fmt_int(r["lag_max"]),
                    fmt_int(r["lag_last"]),
                ]
                for r in rows
            ],
        )  # fmt: skip
    )
    return True


def build(
    cfg: Config,
    period: Period,
    database: str | None = None,
    bench_dir: Path = perf.BENCH_RESULTS,
    now: datetime | None = None,
) -> Report:
    """The report of `period` from ClickHouse (`database`, default clickhouse.database)."""
    from flinkpulse.clickhouse.migrate import check_database_name, client

    db = check_database_name(database or cfg.clickhouse.database)
    ch = client(cfg, "reader", database=db)
    try:
        incidents, n_incidents = _incidents(ch, period)
        energy, top_app = _energy(ch, period)
        web, web_tot = _web(ch, period)
        sections = [
            incidents,
            energy,
            _climate(ch, period),
            _gaming(ch, period),
            web,
            _quality(cfg, ch, period),
            _performance(cfg, ch, period, bench_dir),
        ]
        summary = [
            ("incidents", fmt_int(n_incidents)),
            (
                "top appliance",
                f"{top_app['appliance']} ({fmt_num(top_app['kwh'], 3)} kWh)" if top_app else "—",
            ),
            ("web requests", fmt_int(web_tot["total_requests"] or 0)),
            ("web error rate", fmt_pct(web_tot["error_rate"])),
        ]
        empty = not n_incidents and not top_app and not web_tot["total_requests"]
        if empty:
            bounds = q.data_bounds(ch)
            first, last_ = bounds["first"], bounds["last"]
            if last_ and last_.year > 1970:
                where = f"the data spans {fmt_time(first)} to {fmt_time(last_)}"
            else:
                where = f"database {db} holds no results yet"
            summary.insert(0, ("note", f"nothing happened in this period; {where}"))
    finally:
        ch.close()
    return Report(
        title="flinkpulse findings report",
        period=period,
        generated_at=now or q.now_utc(),
        database=db,
        summary=summary,
        sections=sections,
    )
