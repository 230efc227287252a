-- 007_path_latency: the latency percentiles of a path over all its requests (results.path-latency).
--
-- web_traffic keeps one row per (window, path, status), each with its own percentiles, which do
-- not merge: "p95 latency by path" needs the job's per-path percentile. One row per HOP window
-- and path; a re-delivered row replaces itself.
CREATE TABLE IF NOT EXISTS {database}.path_latency
(
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    path         String,
    requests     Int64,
    errors       Int64,
    latency_p50  Float64,
    latency_p95  Float64,
    latency_p99  Float64,
    _topic       LowCardinality(String),
    _partition   Int32,
    _offset      Int64,
    _loaded_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_end, path, window_start);
