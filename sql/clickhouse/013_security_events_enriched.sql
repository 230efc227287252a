-- 013_security_events_enriched: the security event log attributed by the devices reference table,
-- at query time.
--
-- Input:  device_assignments (every version of iot.devices, loaded by the loader: one row per
--         device and updated_at, the time the assignment took effect), security_events (the raw
--         log, passed through by device_stats as it came).
-- Output: security_events_enriched, a view: each security event with the assignment of its device
--         in force at its event time.
-- Params: {database}.
--
-- Why here and not in Flink (docs/techniques.md): an event-time temporal join holds each event
-- back until the watermark passes it, and a quiet home's last door event would wait for its next
-- one; the log must show an event when it happens. The join at query time costs nothing upstream
-- and is exact however late an assignment or an event is loaded.
--
-- Every version is kept (no TTL): history is what the as-of join reads. Kafka compaction of
-- iot.devices keeps a device's newest record only, so a version the loader had not read before
-- compaction removed it is missing here too (the loader follows the topic within seconds).
-- A version sent again (the same device and updated_at, e.g. `produce iot` restarted) is one row
-- after merges; the view reads FINAL, so it is one row at once.
CREATE TABLE IF NOT EXISTS {database}.device_assignments
(
    device_id   String,
    home_id     String,
    room        LowCardinality(String),
    owner       String,
    updated_at  DateTime64(3, 'UTC'),
    _topic      LowCardinality(String),
    _partition  Int32,
    _offset     Int64,
    _loaded_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (device_id, updated_at);

-- ASOF LEFT JOIN: for each event, the assignment row of the same device with the greatest
-- updated_at <= event_time (an assignment takes effect at its updated_at, inclusive). The event's
-- own home_id and room stay as it said; the device table's answer is in assigned_home_id,
-- assigned_room, owner and assigned_at. An event of a device with no assignment yet (or none at
-- all) is unattributed: '' for the three strings and the epoch for assigned_at (join_use_nulls =
-- 0, pinned here so a client with another setting reads the same columns, not NULLs).
-- Both sides FINAL: a re-delivered event or assignment never shows twice. Cost: a time filter on
-- event_time reaches security_events' sorting key (only the range is read); the assignments are
-- read whole into the join's hash table (one row per device and move: small).
CREATE VIEW IF NOT EXISTS {database}.security_events_enriched AS
SELECT
    e.event_id    AS event_id,
    e.home_id     AS home_id,
    e.device_id   AS device_id,
    e.room        AS room,
    e.kind        AS kind,
    e.event_time  AS event_time,
    a.home_id     AS assigned_home_id,
    a.room        AS assigned_room,
    a.owner       AS owner,
    a.updated_at  AS assigned_at
FROM {database}.security_events AS e FINAL
ASOF LEFT JOIN {database}.device_assignments AS a FINAL
    ON e.device_id = a.device_id AND e.event_time >= a.updated_at
SETTINGS join_use_nulls = 0;
