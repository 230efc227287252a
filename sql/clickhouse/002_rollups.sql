-- 002_rollups: hourly rollups, kept up to date by materialized views, for looking back over
-- days without scanning every HOP window.
--
-- HOP windows overlap (size > slide), so one event is counted in size/slide windows. The
-- rollups keep only the windows that tile time exactly (start a multiple of the size; the
-- same filter the dashboards use), so each event is counted once.
--
-- Query them with GROUP BY and the aggregate of each column (sum/min/max): rows of one key
-- are merged in the background, not at insert. A materialized view sees inserts only: rows
-- loaded before this migration are not in the rollups, and a replayed (re-inserted) window
-- is counted twice here, while the ReplacingMergeTree tables collapse it.

CREATE TABLE IF NOT EXISTS {database}.player_stats_hourly
(
    hour      DateTime('UTC'),
    player_id String,
    team      LowCardinality(String),
    windows   SimpleAggregateFunction(sum, UInt64),
    kills     SimpleAggregateFunction(sum, Int64),
    deaths    SimpleAggregateFunction(sum, Int64),
    assists   SimpleAggregateFunction(sum, Int64),
    headshots SimpleAggregateFunction(sum, Int64),
    damage    SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, player_id, team);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.player_stats_hourly_mv
TO {database}.player_stats_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    player_id,
    team,
    count()                     AS windows,
    sum(toInt64(kills))         AS kills,
    sum(toInt64(deaths))        AS deaths,
    sum(toInt64(assists))       AS assists,
    sum(toInt64(headshots))     AS headshots,
    sum(damage)                 AS damage
FROM {database}.player_stats AS s
WHERE modulo(toUnixTimestamp(window_start), dateDiff('second', window_start, window_end)) = 0
GROUP BY hour, player_id, team;

CREATE TABLE IF NOT EXISTS {database}.energy_usage_hourly
(
    hour        DateTime('UTC'),
    home_id     String,
    appliance   LowCardinality(String),
    kwh         SimpleAggregateFunction(sum, Float64),
    max_power_w SimpleAggregateFunction(max, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, home_id, appliance);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.energy_usage_hourly_mv
TO {database}.energy_usage_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    home_id,
    appliance,
    sum(kwh)                    AS kwh,
    max(max_power_w)            AS max_power_w
FROM {database}.energy_usage AS s
WHERE modulo(toUnixTimestamp(window_start), dateDiff('second', window_start, window_end)) = 0
GROUP BY hour, home_id, appliance;

-- avg per hour = value_sum / samples
CREATE TABLE IF NOT EXISTS {database}.device_stats_hourly
(
    hour        DateTime('UTC'),
    device_id   String,
    home_id     String,
    room        LowCardinality(String),
    sensor_type LowCardinality(String),
    unit        LowCardinality(String),
    samples     SimpleAggregateFunction(sum, Int64),
    value_sum   SimpleAggregateFunction(sum, Float64),
    min_value   SimpleAggregateFunction(min, Float64),
    max_value   SimpleAggregateFunction(max, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, device_id, sensor_type, home_id, room, unit);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.device_stats_hourly_mv
TO {database}.device_stats_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    device_id,
    home_id,
    room,
    sensor_type,
    unit,
    sum(toInt64(samples))       AS samples,
    sum(s.avg_value * s.samples) AS value_sum,
    min(min_value)              AS min_value,
    max(max_value)              AS max_value
FROM {database}.device_stats AS s
WHERE modulo(toUnixTimestamp(window_start), dateDiff('second', window_start, window_end)) = 0
GROUP BY hour, device_id, home_id, room, sensor_type, unit;

-- error rate per hour = errors / requests; latency_p95_max: the worst window p95 of the hour
CREATE TABLE IF NOT EXISTS {database}.web_traffic_hourly
(
    hour            DateTime('UTC'),
    path            String,
    status          Int32,
    requests        SimpleAggregateFunction(sum, Int64),
    errors          SimpleAggregateFunction(sum, Int64),
    bytes           SimpleAggregateFunction(sum, Int64),
    latency_p95_max SimpleAggregateFunction(max, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, path, status);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.web_traffic_hourly_mv
TO {database}.web_traffic_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    path,
    status,
    sum(requests)               AS requests,
    sum(errors)                 AS errors,
    sum(bytes)                  AS bytes,
    max(latency_p95)            AS latency_p95_max
FROM {database}.web_traffic AS s
WHERE modulo(toUnixTimestamp(window_start), dateDiff('second', window_start, window_end)) = 0
GROUP BY hour, path, status;

CREATE TABLE IF NOT EXISTS {database}.client_activity_hourly
(
    hour      DateTime('UTC'),
    client_ip String,
    country   LowCardinality(String),
    requests  SimpleAggregateFunction(sum, Int64),
    errors    SimpleAggregateFunction(sum, Int64),
    bytes     SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, country, client_ip);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.client_activity_hourly_mv
TO {database}.client_activity_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    client_ip,
    country,
    sum(requests)               AS requests,
    sum(errors)                 AS errors,
    sum(bytes)                  AS bytes
FROM {database}.client_activity AS s
WHERE modulo(toUnixTimestamp(window_start), dateDiff('second', window_start, window_end)) = 0
GROUP BY hour, client_ip, country;

-- alerts per hour of detection, rule and severity
CREATE TABLE IF NOT EXISTS {database}.alerts_hourly
(
    hour     DateTime('UTC'),
    rule     LowCardinality(String),
    severity LowCardinality(String),
    alerts   SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, rule, severity);

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.alerts_hourly_mv
TO {database}.alerts_hourly AS
SELECT toStartOfHour(detected_at) AS hour, rule, severity, count() AS alerts
FROM {database}.alerts AS s
GROUP BY hour, rule, severity;
