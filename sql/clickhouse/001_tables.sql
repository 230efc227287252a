-- 001_tables: the tables the loader fills, one per Kafka topic (flinkpulse/loader/).
--
-- `flinkpulse clickhouse migrate` applies this file once per database ({database} is the
-- configured database, clickhouse.database, default flinkpulse); every statement is also
-- idempotent on its own (IF NOT EXISTS), so a migration interrupted half-way re-runs safely.
--
-- Column names and types are the Flink views' (sql/flink/*.sql): INT -> Int32,
-- BIGINT -> Int64, DOUBLE -> Float64, STRING -> String, TIMESTAMP(3) -> DateTime64(3, 'UTC'),
-- MAP<STRING, STRING> -> Map(String, String). Nullable Flink columns arrive as NULL rarely
-- (e.g. no team yet); the loader stores the type's default instead (0, '').
--
-- Bookkeeping of the exactly-once loader, on every table:
--   _topic, _partition, _offset  where the row was read from (resume = max(_offset) + 1)
--   _loaded_at                   when the row was inserted (load latency, debugging)
--
-- Engines: ReplacingMergeTree keyed on window + entity (alert_id, event_id for the event
-- tables), so a replay of the same results (a Flink job re-run from the start writes the same
-- windows again, at new offsets) collapses to one row on merge and under FINAL. The loader
-- itself never writes a row twice, so plain queries are exact for a pipeline that was not
-- re-run. ORDER BY leads with window_end: the dashboards filter on a recent time range of
-- window_end, then group by the entity.
--
-- No PARTITION BY: an INSERT into a partitioned table is split into one part per partition
-- key, committed one after another; the loader's proof needs every insert (one Kafka
-- partition's offset range, in offset order) to land whole or as a prefix. These tables hold
-- window results (small) and are not dropped by partition.

-- gaming: per player and HOP window (results.player-stats)
CREATE TABLE IF NOT EXISTS {database}.player_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    player_id    String,
    team         LowCardinality(String),
    match_id     String,
    kills        Int32,
    deaths       Int32,
    assists      Int32,
    damage       Float64,
    headshots    Int32,
    kd_ratio     Float64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, player_id, window_start);

-- gaming: per team and match and HOP window (results.team-stats)
CREATE TABLE IF NOT EXISTS {database}.team_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    match_id     String,
    team         LowCardinality(String),
    players      Int32,
    kills        Int32,
    deaths       Int32,
    damage       Float64,
    kd_ratio     Float64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, match_id, team, window_start);

-- gaming: top-N players per HOP window (results.leaderboard); `rank` 1..N within a window
CREATE TABLE IF NOT EXISTS {database}.leaderboard
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    `rank`       Int32,
    player_id    String,
    team         LowCardinality(String),
    kills        Int32,
    deaths       Int32,
    kd_ratio     Float64,
    score        Float64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, window_start, player_id);

-- smart home: per device and sensor type and HOP window (results.device-stats)
CREATE TABLE IF NOT EXISTS {database}.device_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    device_id    String,
    home_id      String,
    room         LowCardinality(String),
    sensor_type  LowCardinality(String),
    unit         LowCardinality(String),
    samples      Int32,
    avg_value    Float64,
    min_value    Float64,
    max_value    Float64,
    last_value   Float64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, device_id, sensor_type, window_start);

-- smart home: energy per home and appliance and HOP window (results.energy-usage).
-- The energy-hog ranking is computed at query time: view energy_hogs (003_views.sql).
CREATE TABLE IF NOT EXISTS {database}.energy_usage
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    home_id      String,
    appliance    LowCardinality(String),
    kwh          Float64,
    avg_power_w  Float64,
    max_power_w  Float64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, home_id, appliance, window_start);

-- web: per normalised path and status and HOP window (results.web-traffic)
CREATE TABLE IF NOT EXISTS {database}.web_traffic
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    path         String,
    status       Int32,
    requests     Int64,
    errors       Int64,
    error_rate   Float64,
    latency_p50  Float64,
    latency_p95  Float64,
    bytes        Int64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, path, status, window_start);

-- web: per client IP and HOP window, with country / browser / device (results.client-activity)
CREATE TABLE IF NOT EXISTS {database}.client_activity
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    client_ip    String,
    country      LowCardinality(String),
    browser      LowCardinality(String),
    device       LowCardinality(String),
    requests     Int64,
    errors       Int64,
    bytes        Int64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, client_ip, window_start);

-- security: one row per alert (topic alerts). alert_id is deterministic (rule, entity, first
-- event time), so a re-detected alert replaces itself. Few rows: keyed on the id alone (it
-- starts with the rule name, so a rule's alerts are stored together).
CREATE TABLE IF NOT EXISTS {database}.alerts
(
    alert_id         String,
    rule             LowCardinality(String),
    severity         LowCardinality(String),
    entity_type      LowCardinality(String),
    entity_id        String,
    summary          String,
    event_count      Int32,
    first_event_time DateTime64(3, 'UTC'),
    last_event_time  DateTime64(3, 'UTC'),
    detected_at      DateTime64(3, 'UTC'),
    attributes       Map(String, String),
    _topic           LowCardinality(String),
    _partition       Int32,
    _offset          Int64,
    _loaded_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY alert_id;

-- security: the raw security events (results.security-events), the security event log.
-- Raw data: kept 30 days after loading (row TTL on _loaded_at, not event_time: a backfill or a
-- replay of old events must not vanish on insert).
CREATE TABLE IF NOT EXISTS {database}.security_events
(
    event_id    String,
    home_id     String,
    device_id   String,
    room        LowCardinality(String),
    kind        LowCardinality(String),
    event_time  DateTime64(3, 'UTC'),
    _topic      LowCardinality(String),
    _partition  Int32,
    _offset     Int64,
    _loaded_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (event_time, event_id)
TTL toDateTime(_loaded_at) + INTERVAL 30 DAY;
