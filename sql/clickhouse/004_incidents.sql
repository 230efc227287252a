-- 004_incidents: alerts are incidents.
--
-- The security_alerts job writes one record per update of an incident: the same alert_id
-- (rule:entity:start of the incident) with a growing version, event_count and occurrences.
-- `alerts` becomes a ReplacingMergeTree(version) keyed by alert_id, so a merge keeps each
-- incident's newest state; read it with FINAL, or through the view alert_incidents.
--
-- A table engine cannot be altered, so the table is rebuilt in place (CREATE OR REPLACE is an
-- atomic swap) with every row it already holds; rows written before this migration are
-- version 1 of their own incident. Each statement can run again: the columns are added first,
-- so the rebuild reads them whether or not it ran before. _offset is kept, so the loader
-- resumes where it was.

-- the hourly rollup counts incidents (their first version), not updates: re-created after the
-- rebuild so that it reads the new table
DROP VIEW IF EXISTS {database}.alerts_hourly_mv;

ALTER TABLE {database}.alerts
    ADD COLUMN IF NOT EXISTS occurrences Int32 DEFAULT 1,
    ADD COLUMN IF NOT EXISTS version UInt64 DEFAULT 1;

CREATE OR REPLACE TABLE {database}.alerts
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
    occurrences      Int32 DEFAULT 1,   -- matches merged into the incident so far
    version          UInt64 DEFAULT 1,  -- update number: the highest is the incident's state
    _topic           LowCardinality(String),
    _partition       Int32,
    _offset          Int64,
    _loaded_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY alert_id
AS SELECT
    alert_id, rule, severity, entity_type, entity_id, summary, event_count, first_event_time,
    last_event_time, detected_at, attributes, occurrences, version, _topic, _partition,
    _offset, _loaded_at
FROM {database}.alerts;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.alerts_hourly_mv
TO {database}.alerts_hourly AS
SELECT toStartOfHour(detected_at) AS hour, rule, severity, count() AS alerts
FROM {database}.alerts AS s
WHERE version <= 1
GROUP BY hour, rule, severity;

-- One row per incident, its newest state (the Security dashboard reads this).
CREATE VIEW IF NOT EXISTS {database}.alert_incidents AS
SELECT
    alert_id,
    rule,
    severity,
    entity_type,
    entity_id,
    summary,
    event_count,
    occurrences,
    version,
    first_event_time,
    last_event_time,
    detected_at,
    attributes
FROM {database}.alerts FINAL;
