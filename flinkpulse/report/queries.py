"""Every figure of `flinkpulse report` that comes from ClickHouse: one query each, over a period.

Each function takes a clickhouse-connect client (bound to the flinkpulse database) and a
:class:`Period`, and returns plain rows (dicts). The report formats these rows and never computes
a figure of its own. Where a dashboard shows the same figure, the same expression is used:

* window tables hold overlapping HOP windows, so sums over a period keep only the windows that
  tile time (:data:`~flinkpulse.superset.definitions.TILING`, as the dashboards' bar charts);
* the period filters window tables on ``window_end`` and incidents on ``last_event_time`` (the
  dashboards' time columns), as ``start <= t < end`` (Superset's time range);
* error rate is ``sum(errors) / sum(requests)``, p95 per path is
  :data:`~flinkpulse.superset.definitions.P95_BY_PATH` over ``path_latency`` (the job's per-path
  percentiles; never over ``web_traffic``'s per-status rows), K/D is the job's ``kd_ratio`` rule
  (deaths of 0 count as 1), cheaters are the players flagged by ``impossible_kill_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flinkpulse.superset.definitions import P95_BY_PATH, TILING

#: the rule whose entities are cheaters (left out of the K/D leaders, as on the Gaming dashboard)
CHEAT_RULE = "impossible_kill_rate"
ENERGY_RULE = "energy_over_threshold"
BRUTE_FORCE_RULE = "brute_force_login"
#: the loaded tables whose load rate and lag the report shows, with their time column
LOADED_TABLES = {
    "player_stats": "window_end",
    "team_stats": "window_end",
    "leaderboard": "window_end",
    "device_stats": "window_end",
    "energy_usage": "window_end",
    "web_traffic": "window_end",
    "client_activity": "window_end",
    "alerts": "last_event_time",
    "security_events": "event_time",
}


@dataclass(frozen=True)
class Period:
    """A half-open UTC time range [start, end)."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def bucket_s(self, points: int = 48) -> int:
        """A round time-bucket size giving at most about `points` buckets over the period."""
        for step in (10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
            if self.seconds / step <= points:
                return step
        return 604800


def _lit(t: datetime) -> str:
    """A DateTime64(3, 'UTC') literal (values are our own datetimes, never user text)."""
    t = t.astimezone(UTC) if t.tzinfo else t
    return f"toDateTime64('{t.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}', 3, 'UTC')"


def _in(col: str, p: Period) -> str:
    return f"{col} >= {_lit(p.start)} AND {col} < {_lit(p.end)}"


def _rows(ch: Any, sql: str) -> list[dict[str, Any]]:
    res = ch.query(sql)
    names = list(res.column_names)
    return [dict(zip(names, r, strict=True)) for r in res.result_rows]


# -- incidents ---------------------------------------------------------------------------------


def incidents_by_rule(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Incidents (one per alert_id, newest state) per rule, with their events and entities."""
    return _rows(
        ch,
        f"""SELECT rule, count() AS incidents, sum(event_count) AS events,
               uniqExact(entity_id) AS entities, max(severity) AS max_severity
        FROM alert_incidents WHERE {_in("last_event_time", p)}
        GROUP BY rule ORDER BY incidents DESC, rule""",
    )


def incidents_over_time(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Incidents per time bucket and rule (the Security dashboard's "Alerts over time")."""
    b = p.bucket_s()
    return _rows(
        ch,
        f"""SELECT toStartOfInterval(last_event_time, INTERVAL {b} SECOND) AS bucket, rule,
               count() AS incidents
        FROM alert_incidents WHERE {_in("last_event_time", p)}
        GROUP BY bucket, rule ORDER BY bucket, rule""",
    )


def top_entities(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """The entities with the most incidents, with the rules they tripped."""
    return _rows(
        ch,
        f"""SELECT entity_type, entity_id, count() AS incidents,
               arrayStringConcat(arraySort(groupUniqArray(rule)), ', ') AS rules
        FROM alert_incidents WHERE {_in("last_event_time", p)}
        GROUP BY entity_type, entity_id ORDER BY incidents DESC, entity_id LIMIT {limit}""",
    )


def example_summaries(ch: Any, p: Period) -> list[dict[str, Any]]:
    """The most recent incident's summary per rule."""
    return _rows(
        ch,
        f"""SELECT rule, argMax(summary, last_event_time) AS summary,
               argMax(entity_id, last_event_time) AS entity_id
        FROM alert_incidents WHERE {_in("last_event_time", p)}
        GROUP BY rule ORDER BY rule""",
    )


def rule_incidents(ch: Any, p: Period, rule: str, limit: int = 20) -> list[dict[str, Any]]:
    """The incidents of one rule, the latest first (e.g. energy alerts, cheaters)."""
    return _rows(
        ch,
        f"""SELECT entity_id, severity, event_count, occurrences, first_event_time,
               last_event_time, summary
        FROM alert_incidents WHERE rule = '{rule}' AND {_in("last_event_time", p)}
        ORDER BY last_event_time DESC, entity_id LIMIT {limit}""",
    )


# -- smart home --------------------------------------------------------------------------------


def homes_by_kwh(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Homes ranked by energy (kWh) over the period."""
    return _rows(
        ch,
        f"""SELECT home_id, sum(kwh) AS kwh, max(max_power_w) AS max_power_w
        FROM energy_usage FINAL WHERE {TILING} AND {_in("window_end", p)}
        GROUP BY home_id ORDER BY kwh DESC, home_id LIMIT {limit}""",
    )


def appliances_by_kwh(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Appliances ranked by kWh across homes (the Smart home dashboard's "Energy hogs")."""
    return _rows(
        ch,
        f"""SELECT appliance, sum(kwh) AS kwh, uniqExact(home_id) AS homes,
               max(max_power_w) AS max_power_w
        FROM energy_hogs WHERE {TILING} AND {_in("window_end", p)}
        GROUP BY appliance ORDER BY kwh DESC, appliance LIMIT {limit}""",
    )


def climate_now(ch: Any, p: Period) -> list[dict[str, Any]]:
    """The last temperature and humidity of each room up to the period's end."""
    return _rows(
        ch,
        f"""SELECT home_id, room, sensor_type, unit,
               argMax(last_value, window_end) AS value, max(window_end) AS updated_at
        FROM device_stats
        WHERE sensor_type IN ('TEMPERATURE', 'HUMIDITY') AND window_end < {_lit(p.end)}
        GROUP BY home_id, room, sensor_type, unit ORDER BY home_id, room, sensor_type""",
    )


def climate_history(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Per room and sensor over the period: sample-weighted mean, min and max."""
    return _rows(
        ch,
        f"""SELECT home_id, room, sensor_type, unit, sum(samples) AS total_samples,
               sum(avg_value * samples) / total_samples AS mean_value,
               min(min_value) AS min_value, max(max_value) AS max_value
        FROM device_stats FINAL
        WHERE sensor_type IN ('TEMPERATURE', 'HUMIDITY') AND {TILING} AND {_in("window_end", p)}
        GROUP BY home_id, room, sensor_type, unit HAVING total_samples > 0
        ORDER BY home_id, room, sensor_type""",
    )


def temperature_over_time(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Mean temperature per time bucket and room (home/room), for the climate chart."""
    b = p.bucket_s()
    return _rows(
        ch,
        f"""SELECT toStartOfInterval(window_end, INTERVAL {b} SECOND) AS bucket,
               concat(home_id, '/', room) AS room,
               sum(avg_value * samples) / sum(samples) AS mean_value
        FROM device_stats FINAL
        WHERE sensor_type = 'TEMPERATURE' AND {TILING} AND {_in("window_end", p)}
        GROUP BY bucket, room HAVING sum(samples) > 0 ORDER BY bucket, room""",
    )


# -- gaming ------------------------------------------------------------------------------------


def kd_leaders(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Players ranked by K/D over the period, the flagged cheaters left out (the view
    player_stats_fair, as the dashboard's K/D chart and the demo's summary)."""
    return _rows(
        ch,
        f"""SELECT player_id, any(team) AS team, sum(kills) AS kills, sum(deaths) AS deaths,
               kills / greatest(deaths, 1) AS kd_ratio
        FROM player_stats_fair
        WHERE {TILING} AND {_in("window_end", p)}
        GROUP BY player_id ORDER BY kd_ratio DESC, kills DESC, player_id LIMIT {limit}""",
    )


def cheaters(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Players flagged by impossible_kill_rate in the period, with their K/D over it."""
    return _rows(
        ch,
        f"""SELECT i.entity_id AS player_id, i.incidents AS incidents, i.summary AS summary,
               s.kills AS kills, s.deaths AS deaths, s.kills / greatest(s.deaths, 1) AS kd_ratio
        FROM (SELECT entity_id, count() AS incidents,
                     argMax(summary, last_event_time) AS summary
              FROM alert_incidents WHERE rule = '{CHEAT_RULE}' AND {_in("last_event_time", p)}
              GROUP BY entity_id) AS i
        LEFT JOIN (SELECT player_id, sum(kills) AS kills, sum(deaths) AS deaths
                   FROM player_stats FINAL WHERE {TILING} AND {_in("window_end", p)}
                   GROUP BY player_id) AS s ON s.player_id = i.entity_id
        ORDER BY incidents DESC, player_id""",
    )


# -- web ---------------------------------------------------------------------------------------


def web_totals(ch: Any, p: Period) -> dict[str, Any]:
    """Requests, errors and the error rate over the period (0 requests: rate None)."""
    rows = _rows(
        ch,
        f"""SELECT sum(requests) AS total_requests, sum(errors) AS total_errors,
               if(total_requests > 0, total_errors / total_requests, NULL) AS error_rate
        FROM web_traffic FINAL WHERE {TILING} AND {_in("window_end", p)}""",
    )
    return rows[0]


def web_paths(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Per path: requests, error rate and p95 latency, the busiest first (path_latency: the
    job's per-path rows, whose p95 is over every status of the path)."""
    return _rows(
        ch,
        f"""SELECT path, sum(requests) AS total_requests, sum(errors) AS total_errors,
               total_errors / total_requests AS error_rate, {P95_BY_PATH} AS latency_p95
        FROM path_latency FINAL WHERE {TILING} AND {_in("window_end", p)}
        GROUP BY path HAVING total_requests > 0
        ORDER BY total_requests DESC, path LIMIT {limit}""",
    )


def web_over_time(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Requests and error rate per time bucket."""
    b = p.bucket_s()
    return _rows(
        ch,
        f"""SELECT toStartOfInterval(window_end, INTERVAL {b} SECOND) AS bucket,
               sum(requests) AS requests, sum(errors) / requests AS error_rate
        FROM web_traffic FINAL WHERE {TILING} AND {_in("window_end", p)}
        GROUP BY bucket HAVING requests > 0 ORDER BY bucket""",
    )


def top_countries(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Requests per country (the Web traffic dashboard's "Traffic by country")."""
    return _rows(
        ch,
        f"""SELECT country, sum(requests) AS requests, uniqExact(client_ip) AS clients
        FROM client_activity FINAL WHERE {TILING} AND {_in("window_end", p)}
        GROUP BY country ORDER BY requests DESC, country LIMIT {limit}""",
    )


def suspicious_clients(ch: Any, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Clients flagged by brute_force_login, then the clients with the most errors."""
    return _rows(
        ch,
        f"""SELECT c.client_ip AS client_ip, c.country AS country, c.requests AS requests,
               c.errors AS errors, c.errors / greatest(c.requests, 1) AS error_rate,
               ifNull(f.incidents, 0) AS brute_force_incidents
        FROM (SELECT client_ip, any(country) AS country, sum(requests) AS requests,
                     sum(errors) AS errors
              FROM client_activity FINAL WHERE {TILING} AND {_in("window_end", p)}
              GROUP BY client_ip) AS c
        LEFT JOIN (SELECT entity_id, count() AS incidents FROM alert_incidents
                   WHERE rule = '{BRUTE_FORCE_RULE}' AND {_in("last_event_time", p)}
                   GROUP BY entity_id) AS f ON f.entity_id = c.client_ip
        WHERE c.errors > 0 OR f.incidents > 0
        ORDER BY brute_force_incidents DESC, errors DESC, client_ip LIMIT {limit}""",
    )


# -- data quality and the loader ---------------------------------------------------------------


def source_quality(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Per source topic, records, late and dead-lettered records that arrived in the period.

    source_quality samples are cumulative counts: the period's figure is the newest sample
    before its end minus the newest before its start (0 when there is none)."""
    return _rows(
        ch,
        f"""SELECT topic,
               argMaxIf(records, sampled_at, sampled_at < {_lit(p.end)})
                 - argMaxIf(records, sampled_at, sampled_at < {_lit(p.start)}) AS records,
               argMaxIf(late, sampled_at, sampled_at < {_lit(p.end)})
                 - argMaxIf(late, sampled_at, sampled_at < {_lit(p.start)}) AS late,
               argMaxIf(dead_lettered, sampled_at, sampled_at < {_lit(p.end)})
                 - argMaxIf(dead_lettered, sampled_at, sampled_at < {_lit(p.start)})
                 AS dead_lettered,
               argMaxIf(future, sampled_at, sampled_at < {_lit(p.end)})
                 - argMaxIf(future, sampled_at, sampled_at < {_lit(p.start)}) AS future
        FROM source_quality WHERE sampled_at < {_lit(p.end)}
        GROUP BY topic ORDER BY topic""",
    )


def loader_stats(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Per loaded table: rows loaded in the period, rows/s while loading, and the lag from a
    row's time (window end, alert's last event) to its arrival in ClickHouse (p50/p95, s)."""
    # one query per table: the embedded server reads only the first 4 KiB of a readonly
    # user's query to check it is a SELECT, and a UNION of all of them is longer
    rows = [
        _rows(
            ch,
            f"""SELECT '{table}' AS table, count() AS rows,
                   dateDiff('millisecond', min(_loaded_at), max(_loaded_at)) / 1000 AS span_s,
                   quantile(0.5)(dateDiff('millisecond', {col}, _loaded_at)) / 1000 AS lag_p50_s,
                   quantile(0.95)(dateDiff('millisecond', {col}, _loaded_at)) / 1000 AS lag_p95_s
            FROM {table} WHERE {_in("_loaded_at", p)}""",
        )[0]
        for table, col in LOADED_TABLES.items()
    ]
    return [r for r in rows if r["rows"]]


def job_throughput(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Per job (the Flink jobs and the loader) over the period, from the job_metrics samples:
    records read and written in the period, the mean and peak records/s read, the mean
    records/s written, and the consumer lag (mean, peak, last).

    records_in/out are cumulative per job run (job_id): a sample's share is its increase over
    the run's previous sample (the last one before the period included); a counter that went
    down was restarted (a failed task) and counts from 0. A run's first sample counts all it
    had read since it started."""
    return _rows(
        ch,
        f"""SELECT job, count() AS samples,
               sum(if(records_in >= prev_in, records_in - prev_in, records_in)) AS records_in,
               sum(if(records_out >= prev_out, records_out - prev_out, records_out))
                 AS records_out,
               avg(records_in_per_s) AS in_per_s, max(records_in_per_s) AS in_per_s_max,
               avg(records_out_per_s) AS out_per_s,
               avg(lag) AS lag_avg, max(lag) AS lag_max, argMax(lag, sampled_at) AS lag_last
        FROM (
            SELECT job, sampled_at, records_in, records_out, records_in_per_s,
                   records_out_per_s, lag,
                   lagInFrame(records_in, 1, 0) OVER w AS prev_in,
                   lagInFrame(records_out, 1, 0) OVER w AS prev_out
            FROM job_metrics WHERE sampled_at < {_lit(p.end)}
            WINDOW w AS (PARTITION BY job, job_id ORDER BY sampled_at
                         ROWS BETWEEN 1 PRECEDING AND CURRENT ROW))
        WHERE sampled_at >= {_lit(p.start)}
        GROUP BY job ORDER BY job""",
    )


def job_rates_over_time(ch: Any, p: Period) -> list[dict[str, Any]]:
    """Mean records/s read per time bucket and job (the throughput chart)."""
    b = p.bucket_s()
    return _rows(
        ch,
        f"""SELECT toStartOfInterval(sampled_at, INTERVAL {b} SECOND) AS bucket, job,
               avg(records_in_per_s) AS in_per_s
        FROM job_metrics WHERE {_in("sampled_at", p)} AND records_in_per_s IS NOT NULL
        GROUP BY bucket, job ORDER BY bucket, job""",
    )


def data_bounds(ch: Any) -> dict[str, Any]:
    """The oldest and newest window end in the database (for an empty period's hint)."""
    return _rows(
        ch,
        """SELECT min(t) AS first, max(t) AS last FROM (
             SELECT window_end AS t FROM player_stats UNION ALL
             SELECT window_end FROM device_stats UNION ALL
             SELECT window_end FROM web_traffic UNION ALL
             SELECT last_event_time FROM alerts)""",
    )[0]


def now_utc() -> datetime:
    return datetime.now(UTC)


def last(span: timedelta, end: datetime | None = None) -> Period:
    """The period of length `span` that ends at `end` (default now)."""
    end = end or now_utc()
    return Period(end - span, end)
