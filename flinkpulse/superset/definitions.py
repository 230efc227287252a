"""The four dashboards (gaming, smart home, security, web traffic) as a small Python source.

`flinkpulse dashboards generate` turns these into the bundle in ``deploy/superset/`` (Superset's
export layout); the committed YAML is what `dashboards import` loads, and `dashboards export`
writes UI edits back into it. UUIDs are derived from stable keys, so re-importing updates the
same objects instead of creating new ones.

Window tables hold HOP windows (size > slide), so one event is counted in size/slide windows.
Charts that sum over a time range keep only the windows that tile time exactly (those whose
start is a multiple of their size): :data:`TILING`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

#: namespace of every UUID in the bundle (never change it: it is the objects' identity)
NAMESPACE = uuid.UUID("5f0c1a52-7d5e-4b8e-9a51-3c0f1b2e6a10")

DATABASE_NAME = "ClickHouse (flinkpulse)"
#: the password is masked; `dashboards import` supplies the reader's real one
MASKED = "XXXXXXXXXX"
DEFAULT_URI = f"clickhousedb://reader:{MASKED}@127.0.0.1:8123/flinkpulse"

REFRESH_SECONDS = 10
#: the last hour up to now ("Last day" would mean yesterday 00:00 to today 00:00)
TIME_RANGE = 'DATEADD(DATETIME("now"), -1, hour) : now'
#: non-overlapping subset of HOP windows: start is a multiple of the window size
TILING = "modulo(toUnixTimestamp(window_start), dateDiff('second', window_start, window_end)) = 0"

#: the p95 latency of a path, over path_latency's rows (one per HOP window and path: the job's
#: own percentile over all the path's requests; web_traffic's per-status p95s do not merge).
#: Over one window (a dashboard point) it is that window's value, and a re-delivered duplicate
#: changes nothing. Over a period (the report: the tiling windows of the path) it is the
#: request-weighted p95 of the windows' p95s, the value at or below which the windows of 95 %
#: of the requests lie: exact per window, an estimate over several (raw latencies are not kept)
#: and never the max, which lets one slow quiet window stand for a busy path.
P95_BY_PATH = "quantileExactWeighted(0.95)(latency_p95, toUInt64(requests))"
#: the slide of the HOP windows (config's default): a line chart without a time grain has one
#: point per slide, and a missing one is a gap in the data, drawn as a gap (resample asfreq)
SLIDE_RULE = "10s"
#: row limit of the table charts: above what their time range holds, so Superset never shows
#: "row limit reached" (that shows when the rows returned reach the limit); pages keep them short
TABLE_ROWS = 10000
#: tables whose rows grow with the traffic (events, clients: 20,000 client IPs an hour) page on
#: the server: the browser gets one page, Superset counts the rest, the limit stays out of reach
GROWING_ROWS = 100_000  # Superset caps any limit at SQL_MAX_ROW (default 100,000)

DT = "DateTime64(3, 'UTC')"
#: ClickHouse's type of the low-cardinality string columns (team, room, country...)
LC = "LowCardinality(String)"


def uid(kind: str, key: str) -> str:
    """The fixed UUID of a bundle object."""
    return str(uuid.uuid5(NAMESPACE, f"flinkpulse/{kind}/{key}"))


# -- datasets ----------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A physical table (``sql`` empty) or a virtual dataset (a SELECT) in ClickHouse."""

    name: str
    columns: list[tuple[str, str]]
    dttm: str = "window_end"
    sql: str = ""
    description: str = ""


_WINDOW = [("window_start", DT), ("window_end", DT)]
#: the raw security event log's columns (security_events), which the enriched view keeps
_SECURITY_EVENT = [
    ("event_id", "String"),
    ("home_id", "String"),
    ("device_id", "String"),
    ("room", LC),
    ("kind", LC),
    ("event_time", DT),
]

#: Column names and types are ClickHouse's (sql/clickhouse/001_tables.sql, 003_views.sql, and
#: what the virtual datasets' SELECTs return); the e2e test compares them with the live schema.
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            "player_stats",
            [
                *_WINDOW,
                ("player_id", "String"),
                ("team", LC),
                ("match_id", "String"),
                ("kills", "Int32"),
                ("deaths", "Int32"),
                ("assists", "Int32"),
                ("damage", "Float64"),
                ("headshots", "Int32"),
                ("kd_ratio", "Float64"),
                ("region", LC),
                ("skill_tier", LC),
            ],
        ),
        Dataset(
            # what the K/D chart ranks: the ClickHouse view (sql/clickhouse/016_player_stats_fair
            # .sql) of player windows without the players flagged by impossible_kill_rate, whose
            # K/D of 30-50 would take every top spot; their incidents are on Security
            "player_stats_fair",
            [
                *_WINDOW,
                ("player_id", "String"),
                ("team", LC),
                ("kills", "Int32"),
                ("deaths", "Int32"),
                ("kd_ratio", "Float64"),
            ],
            description="Player windows, flagged cheaters (impossible_kill_rate) excluded",
        ),
        Dataset(
            "team_stats",
            [
                *_WINDOW,
                ("match_id", "String"),
                ("team", LC),
                ("players", "Int32"),
                ("kills", "Int32"),
                ("deaths", "Int32"),
                ("damage", "Float64"),
                ("kd_ratio", "Float64"),
            ],
        ),
        Dataset(
            "leaderboard_latest",
            [
                *_WINDOW,
                ("rank", "Int32"),
                ("player_id", "String"),
                ("team", LC),
                ("kills", "Int32"),
                ("deaths", "Int32"),
                ("kd_ratio", "Float64"),
                ("score", "Float64"),
            ],
            sql=(
                "-- the top-10 of the most recent window\n"
                "SELECT window_start, window_end, rank, player_id, team, kills, deaths, kd_ratio,"
                " score\nFROM leaderboard\n"
                "WHERE window_end = (SELECT max(window_end) FROM leaderboard)"
            ),
            description="The leaderboard of the latest window",
        ),
        Dataset(
            "device_latest",
            [
                ("home_id", "String"),
                ("room", LC),
                ("owner", "String"),
                ("sensor_type", LC),
                ("unit", LC),
                ("value", "Float64"),
                ("updated_at", DT),
            ],
            dttm="updated_at",
            sql=(
                "-- the last reading of every room's temperature and humidity sensors; rooms and\n"
                "-- owners as the devices reference table said at the readings' time\n"
                "SELECT home_id, room, argMax(owner, window_end) AS owner, sensor_type, unit,\n"
                "       argMax(last_value, window_end) AS value, max(window_end) AS updated_at\n"
                "FROM device_stats\n"
                "WHERE sensor_type IN ('TEMPERATURE', 'HUMIDITY')\n"
                "GROUP BY home_id, room, sensor_type, unit"
            ),
            description="Current temperature and humidity per room",
        ),
        Dataset(
            "energy_usage",
            [
                *_WINDOW,
                ("home_id", "String"),
                ("appliance", LC),
                ("kwh", "Float64"),
                ("avg_power_w", "Float64"),
                ("max_power_w", "Float64"),
            ],
        ),
        Dataset(
            # the view that ranks appliances by kWh per window (003_views.sql)
            "energy_hogs",
            [
                *_WINDOW,
                ("home_id", "String"),
                ("appliance", LC),
                ("kwh", "Float64"),
                ("avg_power_w", "Float64"),
                ("max_power_w", "Float64"),
                ("hog_rank", "UInt16"),
                ("home_rank", "UInt16"),
            ],
            description="Appliances ranked by energy per window: across homes and per home",
        ),
        Dataset(
            # one row per incident, its newest version (the view over alerts FINAL,
            # 004_incidents.sql): `alerts` itself holds every update until merges collapse it
            "alert_incidents",
            [
                ("alert_id", "String"),
                ("rule", LC),
                ("severity", LC),
                ("entity_type", LC),
                ("entity_id", "String"),
                ("summary", "String"),
                ("event_count", "Int32"),
                ("occurrences", "Int32"),
                ("version", "UInt64"),
                ("first_event_time", DT),
                ("last_event_time", DT),
                ("detected_at", DT),
            ],
            # when the incident happened: a job re-run re-detects old alerts (new detected_at,
            # same alert_id), which must not move them on the time axis
            dttm="last_event_time",
            description="Alert incidents, one row each in its newest state",
        ),
        Dataset(
            "security_events",
            _SECURITY_EVENT,
            dttm="event_time",
        ),
        Dataset(
            # the log with each device's assignment in force at the event's time, joined at
            # query time (013_security_events_enriched.sql): '' for an unassigned device
            "security_events_enriched",
            [
                *_SECURITY_EVENT,
                ("assigned_home_id", "String"),
                ("assigned_room", LC),
                ("owner", "String"),
                ("assigned_at", DT),
            ],
            dttm="event_time",
            description="Security events with their device's home, room and owner at the time",
        ),
        Dataset(
            "path_latency",
            [
                *_WINDOW,
                ("path", "String"),
                ("requests", "Int64"),
                ("errors", "Int64"),
                ("latency_p50", "Float64"),
                ("latency_p95", "Float64"),
                ("latency_p99", "Float64"),
            ],
            description="Per path and HOP window: latency percentiles over all its requests",
        ),
        Dataset(
            "web_traffic",
            [
                *_WINDOW,
                ("path", "String"),
                ("status", "Int32"),
                ("requests", "Int64"),
                ("errors", "Int64"),
                ("error_rate", "Float64"),
                ("latency_p50", "Float64"),
                ("latency_p95", "Float64"),
                ("bytes", "Int64"),
            ],
        ),
        Dataset(
            # the newest data-quality sample per source topic (005_, 008_source_duplicates.sql), written
            # by the loader component's quality process
            "source_quality_latest",
            [
                ("topic", LC),
                ("sampled_at", DT),
                ("records", "Int64"),
                ("late", "Int64"),
                ("dead_lettered", "Int64"),
                ("future", "Int64"),
                ("late_pct", "Float64"),
                ("dead_lettered_pct", "Float64"),
                ("future_pct", "Float64"),
                ("duplicates", "Int64"),
                ("duplicates_pct", "Float64"),
            ],
            dttm="sampled_at",
            description="Per source topic: the share of records late, dead-lettered, future, "
            "duplicated",
        ),
        Dataset(
            "client_activity",
            [
                *_WINDOW,
                ("client_ip", "String"),
                ("country", LC),
                ("browser", LC),
                ("device", LC),
                ("requests", "Int64"),
                ("errors", "Int64"),
                ("bytes", "Int64"),
            ],
        ),
    ]
}


# -- charts ------------------------------------------------------------------------------------


@dataclass
class Chart:
    """One chart. ``kind``: line | bar (x = time or a category) | table (aggregate) | raw."""

    key: str
    title: str
    kind: str
    dataset: str
    metrics: list[tuple[str, str]] = field(default_factory=list)  # (label, SQL aggregate)
    groupby: list[str] = field(default_factory=list)
    x: str = ""  # bar/line x-axis; default: the dataset's time column
    columns: list[str] = field(default_factory=list)  # raw tables
    where: list[str] = field(default_factory=list)
    time_range: str = TIME_RANGE
    row_limit: int = 10000
    series_limit: int = 0
    order_desc: bool = True
    stacked: bool = False
    grain: str | None = None  # time grain of a temporal x-axis (None: raw window_end)
    width: int = 6
    height: int = 50
    page_length: int = 0  # tables: rows per page (0: one page)
    server_pages: bool = False  # tables: page on the server (rows grow with the traffic)
    truncate: list[str] = field(default_factory=list)  # tables: cut long cells to one line
    #: line charts: resample to this rule (asfreq) so that missing points break the line
    resample: str = ""

    @property
    def uuid(self) -> str:
        return uid("chart", self.key)


def _m(label: str, sql: str) -> dict[str, Any]:
    return {
        "expressionType": "SQL",
        "sqlExpression": sql,
        "label": label,
        "hasCustomLabel": True,
        "optionName": f"metric_{uuid.uuid5(NAMESPACE, label + sql).hex[:12]}",
    }


def _where(sql: str) -> dict[str, Any]:
    return {
        "clause": "WHERE",
        "expressionType": "SQL",
        "sqlExpression": sql,
        "subject": None,
        "operator": None,
        "comparator": None,
        "filterOptionName": f"filter_{uuid.uuid5(NAMESPACE, sql).hex[:12]}",
    }


def _time_filter(col: str, time_range: str) -> dict[str, Any]:
    return {
        "clause": "WHERE",
        "expressionType": "SIMPLE",
        "subject": col,
        "operator": "TEMPORAL_RANGE",
        "comparator": time_range,
        "filterOptionName": f"filter_time_{col}",
    }


#: series colours fixed per dashboard (label -> colour): metrics of one chart that the colour
#: scheme would otherwise give one colour (Team comparison: kills and deaths)
LABEL_COLORS: dict[str, dict[str, str]] = {
    "gaming": {"kills": "#1FA8C9", "deaths": "#E04355"},
}

DASHBOARDS: list[tuple[str, str, list[Chart]]] = [
    (
        "gaming",
        "Gaming",
        [
            Chart(
                "gaming_kd_over_time",
                "K/D ratio over time (top players)",
                "line",
                "player_stats_fair",
                metrics=[("K/D ratio", "avg(kd_ratio)")],
                groupby=["player_id"],
                series_limit=5,
                resample=SLIDE_RULE,
                width=12,
            ),
            Chart(
                "gaming_deaths_per_player",
                "Deaths per player (by skill tier)",
                "bar",
                "player_stats",
                metrics=[("deaths", "sum(deaths)")],
                x="player_id",
                # the tier of the player's profile (gaming.players) at each window's end
                groupby=["skill_tier"],
                stacked=True,
                where=[TILING],
                row_limit=20,
            ),
            Chart(
                "gaming_team_comparison",
                "Team comparison",
                "bar",
                "team_stats",
                metrics=[("kills", "sum(kills)"), ("deaths", "sum(deaths)")],
                x="team",
                where=[TILING],
            ),
            Chart(
                "gaming_leaderboard",
                "Live leaderboard",
                "raw",
                "leaderboard_latest",
                columns=["rank", "player_id", "team", "kills", "deaths", "kd_ratio", "score"],
                time_range="No filter",
                row_limit=100,  # the dataset holds 10 rows: a limit of 10 would be "reached"
                order_desc=False,
                width=12,
            ),
        ],
    ),
    (
        "smart_home",
        "Smart home",
        [
            Chart(
                "home_climate_now",
                "Temperature and humidity per room (now)",
                "raw",
                "device_latest",
                columns=["home_id", "room", "owner", "sensor_type", "value", "unit", "updated_at"],
                # rooms heard from in the last hour, the freshest readings first
                row_limit=TABLE_ROWS,
                page_length=20,
            ),
            Chart(
                "home_power_over_time",
                "Power over time per home (W)",
                "line",
                "energy_usage",
                metrics=[("power (W)", "sum(avg_power_w)")],
                groupby=["home_id"],
                series_limit=10,
                resample=SLIDE_RULE,
            ),
            Chart(
                "home_energy_hogs",
                "Energy hogs by appliance (kWh)",
                "bar",
                "energy_hogs",
                metrics=[("kWh", "sum(kwh)")],
                x="appliance",
                where=[TILING],
                row_limit=15,
            ),
            Chart(
                "home_energy_alerts",
                "Energy alerts",
                "raw",
                "alert_incidents",
                columns=["detected_at", "severity", "entity_id", "occurrences", "summary"],
                where=["rule = 'energy_over_threshold'"],
                row_limit=TABLE_ROWS,
                page_length=10,
                truncate=["summary"],
            ),
        ],
    ),
    (
        "security",
        "Security",
        [
            Chart(
                "security_alerts_over_time",
                "Alerts over time by rule",
                "bar",
                "alert_incidents",
                metrics=[("incidents", "count()")],
                groupby=["rule"],
                stacked=True,
                grain="PT1M",
                width=12,
            ),
            Chart(
                "security_latest_alerts",
                "Latest alerts",
                "raw",
                "alert_incidents",
                columns=[
                    "detected_at",
                    "rule",
                    "severity",
                    "entity_type",
                    "entity_id",
                    "occurrences",
                    "summary",
                ],
                row_limit=TABLE_ROWS,
                page_length=20,
                # one line per alert (the full text shows on hover); full width for the summary
                truncate=["summary"],
                width=12,
                height=60,
            ),
            Chart(
                "security_event_log",
                "Security event log",
                "raw",
                "security_events",
                columns=["event_time", "home_id", "room", "device_id", "kind"],
                row_limit=GROWING_ROWS,
                page_length=20,
                server_pages=True,
            ),
            Chart(
                "security_source_quality",
                "Data quality per source topic",
                "table",
                "source_quality_latest",
                metrics=[
                    ("records", "max(records)"),
                    ("late %", "max(late_pct)"),
                    ("dead-lettered %", "max(dead_lettered_pct)"),
                    ("future %", "max(future_pct)"),
                    ("duplicates %", "max(duplicates_pct)"),
                ],
                groupby=["topic"],
                # the newest sample of each topic, however old (counts are cumulative)
                time_range="No filter",
                row_limit=100,
            ),
            Chart(
                "security_events_by_owner",
                "Security events per owner and room",
                "table",
                "security_events_enriched",
                metrics=[
                    ("events", "count()"),
                    ("door opens", "countIf(kind = 'DOOR_OPEN')"),
                    ("motion", "countIf(kind = 'MOTION')"),
                ],
                # owner and room from the devices reference table as of each event ('' for a
                # device it did not know then)
                groupby=["owner", "assigned_home_id", "assigned_room"],
                row_limit=GROWING_ROWS,
                page_length=10,
                server_pages=True,
                width=12,
            ),
        ],
    ),
    (
        "web_traffic",
        "Web traffic",
        [
            Chart(
                "web_requests_over_time",
                "Requests over time",
                "line",
                "web_traffic",
                metrics=[("requests", "sum(requests)")],
                resample=SLIDE_RULE,
            ),
            Chart(
                "web_error_rate_over_time",
                "Error rate over time",
                "line",
                "web_traffic",
                metrics=[("error rate", "sum(errors) / sum(requests)")],
                resample=SLIDE_RULE,
            ),
            Chart(
                "web_latency_p95",
                "p95 latency by path (ms)",
                "line",
                "path_latency",
                metrics=[("p95 latency (ms)", P95_BY_PATH)],
                groupby=["path"],
                series_limit=5,
                resample=SLIDE_RULE,
            ),
            Chart(
                "web_traffic_by_country",
                "Traffic by country",
                "bar",
                "client_activity",
                metrics=[("requests", "sum(requests)")],
                x="country",
                where=[TILING],
                row_limit=20,
            ),
            Chart(
                "web_top_clients",
                "Top clients",
                "table",
                "client_activity",
                metrics=[
                    ("requests", "sum(requests)"),
                    ("errors", "sum(errors)"),
                    ("bytes", "sum(bytes)"),
                ],
                groupby=["client_ip", "country"],
                where=[TILING],
                # every client of the hour, the busiest first, 10 a page
                row_limit=GROWING_ROWS,
                page_length=10,
                server_pages=True,
                width=12,
            ),
        ],
    ),
]


# -- YAML documents ----------------------------------------------------------------------------

_CHART_IDS = {c.key: i for i, c in enumerate((c for _, _, cs in DASHBOARDS for c in cs), 1)}

VIZ = {
    "line": "echarts_timeseries_line",
    "bar": "echarts_timeseries_bar",
    "table": "table",
    "raw": "table",
}


def _filters(c: Chart) -> list[dict[str, Any]]:
    ds = DATASETS[c.dataset]
    out = [_where(w) for w in c.where]
    if c.time_range != "No filter":
        out.insert(0, _time_filter(ds.dttm, c.time_range))
    return out


def chart_params(c: Chart) -> dict[str, Any]:
    """The chart's form data (what Explore would save)."""
    ds = DATASETS[c.dataset]
    metrics = [_m(label, sql) for label, sql in c.metrics]
    p: dict[str, Any] = {
        "datasource": f"__{c.dataset}",  # rewritten to "<id>__table" on import
        "viz_type": VIZ[c.kind],
        "adhoc_filters": _filters(c),
        "row_limit": c.row_limit,
        "extra_form_data": {},
        "dashboards": [],
    }
    if c.kind in ("line", "bar"):
        temporal = not c.x
        p.update(
            {
                "x_axis": c.x or ds.dttm,
                "metrics": metrics,
                "groupby": c.groupby,
                "order_desc": c.order_desc,
                "show_legend": True,
                "legendType": "scroll",
                "legendOrientation": "top",
                "rich_tooltip": True,
                "y_axis_format": "SMART_NUMBER",
                "truncateXAxis": True,
                "zoomable": False,
            }
        )
        if temporal:
            p["x_axis_time_format"] = "%H:%M:%S"
            p["time_grain_sqla"] = c.grain
        else:
            if len(metrics) == 1:  # sorting by one metric of several is not defined
                p["x_axis_sort"] = metrics[0]["label"]
                p["x_axis_sort_asc"] = False
            # every category labelled ("auto" drops every other label when they crowd)
            p["xAxisLabelInterval"] = "0"
            p["xAxisLabelRotation"] = 45
        if c.resample:
            p["resample_rule"] = c.resample
            p["resample_method"] = "asfreq"  # a missing point stays null: the line breaks
        if c.series_limit:
            p["series_limit"] = c.series_limit
            p["series_limit_metric"] = metrics[0]
        if c.kind == "line":
            p["markerEnabled"] = True
            p["markerSize"] = 4
        if c.stacked:
            p["stack"] = "Stack"
    elif c.kind == "table":
        p.update(
            {
                "query_mode": "aggregate",
                "groupby": c.groupby,
                "metrics": metrics,
                "all_columns": [],
                "timeseries_limit_metric": metrics[0],
                "order_desc": c.order_desc,
                "table_timestamp_format": "%Y-%m-%d %H:%M:%S",
                "server_pagination": False,
            }
        )
        _table_options(c, p)
    else:  # raw
        order_col = ds.dttm if ds.dttm in c.columns else c.columns[0]
        p.update(
            {
                "query_mode": "raw",
                "all_columns": c.columns,
                "order_by_cols": [json.dumps([order_col, not c.order_desc])],
                "table_timestamp_format": "%Y-%m-%d %H:%M:%S",
                "server_pagination": False,
            }
        )
        _table_options(c, p)
    return p


def _table_options(c: Chart, p: dict[str, Any]) -> None:
    if c.server_pages:
        p["server_pagination"] = True
        p["server_page_length"] = c.page_length
    elif c.page_length:
        p["page_length"] = c.page_length
    if c.truncate:
        p["column_config"] = {col: {"truncateLongCells": True} for col in c.truncate}


def chart_query_context(c: Chart) -> dict[str, Any]:
    """What the frontend would send to /api/v1/chart/data: lets the API serve the chart's data."""
    ds = DATASETS[c.dataset]
    params = chart_params(c)
    filters: list[dict[str, Any]] = []
    if c.time_range != "No filter":
        filters.append({"col": ds.dttm, "op": "TEMPORAL_RANGE", "val": c.time_range})
    where = " AND ".join(f"({w})" for w in c.where)
    metrics = params.get("metrics", [])
    q: dict[str, Any] = {
        "filters": filters,
        "extras": {"having": "", "where": where},
        "applied_time_extras": {},
        "annotation_layers": [],
        "row_limit": c.row_limit,
        "series_limit": 0,
        "order_desc": c.order_desc,
        "url_params": {},
        "custom_params": {},
        "custom_form_data": {},
    }
    if c.kind in ("line", "bar"):
        x = c.x or ds.dttm
        axis = {"columnType": "BASE_AXIS", "sqlExpression": x, "label": x, "expressionType": "SQL"}
        if not c.x and c.grain:
            axis["timeGrain"] = c.grain
            q["extras"]["time_grain_sqla"] = c.grain
        q.update(
            {
                "columns": [axis, *c.groupby],
                "series_columns": c.groupby,
                "metrics": metrics,
                "orderby": [[metrics[0], False]] if c.x or c.series_limit else [],
            }
        )
        if c.series_limit:
            q["series_limit"] = c.series_limit
            q["series_limit_metric"] = metrics[0]
    elif c.kind == "table":
        q.update(
            {"columns": c.groupby, "metrics": metrics, "orderby": [[metrics[0], not c.order_desc]]}
        )
    else:
        order_col = ds.dttm if ds.dttm in c.columns else c.columns[0]
        q.update({"columns": c.columns, "metrics": [], "orderby": [[order_col, not c.order_desc]]})
    return {
        "datasource": {"id": 0, "type": "table"},  # rewritten on import
        "force": False,
        "queries": [q],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }


def safe_name(name: str) -> str:
    """A file-name-safe form of a title (also used by `dashboards export`)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def chart_file(c: Chart) -> str:
    return f"charts/{safe_name(c.title)}_{c.uuid[:8]}.yaml"


def dataset_file(name: str) -> str:
    return f"datasets/{safe_name(DATABASE_NAME)}/{name}.yaml"


def database_file() -> str:
    return f"databases/{safe_name(DATABASE_NAME)}.yaml"


def dashboard_file(key: str) -> str:
    return f"dashboards/{key}.yaml"


def database_doc(uri: str = DEFAULT_URI) -> dict[str, Any]:
    return {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": uri,
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "extra": {"allows_virtual_table_explore": True},
        "uuid": uid("database", "clickhouse"),
        "version": "1.0.0",
    }


def dataset_doc(d: Dataset) -> dict[str, Any]:
    return {
        "table_name": d.name,
        "main_dttm_col": d.dttm,
        "description": d.description or None,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "schema": None,
        "sql": d.sql or None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "uuid": uid("dataset", d.name),
        "metrics": [
            {
                "metric_name": "count",
                "verbose_name": "COUNT(*)",
                "metric_type": "count",
                "expression": "count()",
                "description": None,
                "d3format": None,
                "extra": None,
                "warning_text": None,
            }
        ],
        "columns": [
            {
                "column_name": name,
                "verbose_name": None,
                "is_dttm": typ.startswith("DateTime"),
                "is_active": True,
                "type": typ,
                "groupby": True,
                "filterable": True,
                "expression": None,
                "description": None,
                "python_date_format": None,
                "extra": None,
            }
            for name, typ in d.columns
        ],
        "version": "1.0.0",
        "database_uuid": uid("database", "clickhouse"),
    }


def chart_doc(c: Chart) -> dict[str, Any]:
    return {
        "slice_name": c.title,
        "description": None,
        "certified_by": None,
        "certification_details": None,
        "viz_type": VIZ[c.kind],
        "params": chart_params(c),
        "query_context": json.dumps(chart_query_context(c)),
        "cache_timeout": None,
        "uuid": c.uuid,
        "version": "1.0.0",
        "dataset_uuid": uid("dataset", c.dataset),
    }


def dashboard_doc(key: str, title: str, charts: list[Chart]) -> dict[str, Any]:
    """Rows of charts filled left to right (a row holds 12 grid columns)."""
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": title}},
    }
    rows: list[list[Chart]] = []
    for c in charts:
        if rows and sum(x.width for x in rows[-1]) + c.width <= 12:
            rows[-1].append(c)
        else:
            rows.append([c])
    for i, row in enumerate(rows, 1):
        row_id = f"ROW-{key}-{i}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for c in row:
            cid = f"CHART-{c.key}"
            position[row_id]["children"].append(cid)
            position[cid] = {
                "type": "CHART",
                "id": cid,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    # a placeholder id: the importer maps it (by uuid) to the real one
                    "chartId": _CHART_IDS[c.key],
                    "width": c.width,
                    "height": c.height,
                    "uuid": c.uuid,
                    "sliceName": c.title,
                },
            }
    return {
        "dashboard_title": title,
        "description": None,
        "css": "",
        "slug": key.replace("_", "-"),
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": uid("dashboard", key),
        "position": position,
        "metadata": {
            "refresh_frequency": REFRESH_SECONDS,
            "timed_refresh_immune_slices": [],
            "expanded_slices": {},
            "color_scheme": "supersetColors",
            "label_colors": dict(LABEL_COLORS.get(key, {})),
            "shared_label_colors": [],
            "color_scheme_domain": [],
            "cross_filters_enabled": False,
            "native_filter_configuration": [],
            "chart_configuration": {},
            "global_chart_configuration": {
                "scope": {"rootPath": ["ROOT_ID"], "excluded": []},
                "chartsInScope": [],
            },
        },
        "version": "1.0.0",
    }


def bundle_docs() -> dict[str, dict[str, Any]]:
    """Every file of the bundle: relative path -> YAML document."""
    docs: dict[str, dict[str, Any]] = {
        "metadata.yaml": {
            "version": "1.0.0",
            "type": "Dashboard",
            "timestamp": "2026-01-01T00:00:00+00:00",
        },
        database_file(): database_doc(),
    }
    used = {c.dataset for _, _, charts in DASHBOARDS for c in charts}
    for name in sorted(used):
        docs[dataset_file(name)] = dataset_doc(DATASETS[name])
    for key, title, charts in DASHBOARDS:
        for c in charts:
            docs[chart_file(c)] = chart_doc(c)
        docs[dashboard_file(key)] = dashboard_doc(key, title, charts)
    return docs
