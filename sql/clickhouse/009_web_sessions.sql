-- 009_web_sessions: visits per client (results.web-sessions, the web_traffic job's SESSION
-- windows) and their rollup per minute of session start.
--
-- One row per session: a client's requests with no gap longer than
-- jobs.web_traffic.session_gap_s; a re-delivered row replaces itself.
CREATE TABLE IF NOT EXISTS {database}.web_sessions
(
    session_start DateTime64(3, 'UTC'),
    session_end   DateTime64(3, 'UTC'),
    client_ip     String,
    user_id       Nullable(String),
    pages         Int32,
    duration_s    Float64,
    bounce        Bool,
    entry_path    String,
    exit_path     String,
    errors        Int32,
    bytes         Int64,
    _topic        LowCardinality(String),
    _partition    Int32,
    _offset       Int64,
    _loaded_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (session_start, client_ip);

-- Per minute of session start: sessions, bounce rate, pages per session, mean duration. A view
-- over FINAL (not a materialized rollup): a re-delivered session must not count twice.
CREATE VIEW IF NOT EXISTS {database}.web_sessions_per_minute AS
SELECT
    toStartOfMinute(s.session_start)  AS minute,
    count()                           AS sessions,
    countIf(s.bounce)                 AS bounces,
    round(countIf(s.bounce) / count(), 4) AS bounce_rate,
    round(avg(s.pages), 3)            AS pages_per_session,
    round(avg(s.duration_s), 3)       AS avg_duration_s
FROM {database}.web_sessions AS s FINAL
GROUP BY minute;
