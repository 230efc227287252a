-- 010_job_metrics: throughput and consumer lag per job, sampled over time.
--
-- Flink's REST API keeps no history: its figures are the running jobs' since they started. The
-- loader component's sampler (flinkpulse/loader/jobmetrics.py) reads them every
-- loader.quality_interval_s and inserts one row per flinkpulse job, plus one for the loader
-- itself (job 'loader', from its status file), so `flinkpulse report` can show any period.
-- records_in / records_out are cumulative counters of one job run (job_id): records read from
-- Kafka by its sources, records its sinks received; they restart at 0 when the job (or a failed
-- task) restarts. The rates are Flink's per-second meters at sampled_at; lag is the records
-- behind the end of the source topics (the source's pendingRecords). NULL: not reported.
CREATE TABLE IF NOT EXISTS {database}.job_metrics
(
    sampled_at        DateTime64(3, 'UTC'),
    job               LowCardinality(String),
    job_id            String,
    state             LowCardinality(String),
    records_in        Nullable(Int64),
    records_out       Nullable(Int64),
    records_in_per_s  Nullable(Float64),
    records_out_per_s Nullable(Float64),
    lag               Nullable(Int64)
)
ENGINE = MergeTree
ORDER BY (job, sampled_at)
TTL toDateTime(sampled_at) + INTERVAL 30 DAY;
