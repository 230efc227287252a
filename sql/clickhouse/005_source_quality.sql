-- 005_source_quality: data quality per source topic, sampled over time.
--
-- The loader component's sampler (flinkpulse/loader/quality.py) counts, every
-- loader.quality_interval_s, each source topic's records and how many of them went to
-- late.<topic> or dlq.<topic> (flinkpulse.quality.source_quality: Kafka end offsets and the
-- reason header of each dead letter), and inserts one row per source topic here.
-- `dead_lettered` and `future` are disjoint: `future` are the dead letters whose reason is
-- "future:" (event time too far ahead of the Kafka timestamp), `dead_lettered` all others.
-- Counts are cumulative (what the topics hold at sampled_at), so the newest sample is the state.
CREATE TABLE IF NOT EXISTS {database}.source_quality
(
    sampled_at    DateTime64(3, 'UTC'),
    topic         LowCardinality(String),
    records       Int64,
    late          Int64,
    dead_lettered Int64,
    future        Int64
)
ENGINE = MergeTree
ORDER BY (topic, sampled_at)
TTL toDateTime(sampled_at) + INTERVAL 30 DAY;

-- The newest sample of each source topic, with the shares in percent of its records
-- (0 when the topic is empty). The Security dashboard's "Data quality per source topic" reads it.
CREATE VIEW IF NOT EXISTS {database}.source_quality_latest AS
SELECT
    topic,
    sampled_at,
    records,
    late,
    dead_lettered,
    future,
    if(records > 0, round(100 * late / records, 3), 0)          AS late_pct,
    if(records > 0, round(100 * dead_lettered / records, 3), 0) AS dead_lettered_pct,
    if(records > 0, round(100 * future / records, 3), 0)        AS future_pct
FROM
(
    SELECT
        topic,
        max(q.sampled_at)                     AS sampled_at,
        argMax(q.records, q.sampled_at)       AS records,
        argMax(q.late, q.sampled_at)          AS late,
        argMax(q.dead_lettered, q.sampled_at) AS dead_lettered,
        argMax(q.future, q.sampled_at)        AS future
    FROM {database}.source_quality AS q
    GROUP BY topic
);
