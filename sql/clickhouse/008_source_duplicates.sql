-- 008_source_duplicates: duplicates per source topic in the data-quality samples.
--
-- The jobs drop later copies of an on-time event (same event id, flinkpulse.topics.DEDUP_KEYS)
-- before any window and keep them in dup.<topic>; the loader's quality sampler counts them
-- like the late and dead-lettered records (flinkpulse.quality.source_quality). Samples taken
-- before this migration read 0. Otherwise source_quality_latest is 005_source_quality.sql's.
ALTER TABLE {database}.source_quality ADD COLUMN IF NOT EXISTS duplicates Int64 DEFAULT 0;

CREATE OR REPLACE VIEW {database}.source_quality_latest AS
SELECT
    topic,
    sampled_at,
    records,
    late,
    dead_lettered,
    future,
    if(records > 0, round(100 * late / records, 3), 0)          AS late_pct,
    if(records > 0, round(100 * dead_lettered / records, 3), 0) AS dead_lettered_pct,
    if(records > 0, round(100 * future / records, 3), 0)        AS future_pct,
    duplicates,
    if(records > 0, round(100 * duplicates / records, 3), 0)    AS duplicates_pct
FROM
(
    SELECT
        topic,
        max(q.sampled_at)                     AS sampled_at,
        argMax(q.records, q.sampled_at)       AS records,
        argMax(q.late, q.sampled_at)          AS late,
        argMax(q.dead_lettered, q.sampled_at) AS dead_lettered,
        argMax(q.future, q.sampled_at)        AS future,
        argMax(q.duplicates, q.sampled_at)    AS duplicates
    FROM {database}.source_quality AS q
    GROUP BY topic
);
