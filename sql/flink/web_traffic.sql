-- web_traffic: access logs per path/status and per client over sliding windows.
--
-- Input : access_logs (decoded, on-time AccessLog rows; event_time is the rowtime)
-- Output: web_traffic, path_latency, client_activity, web_sessions (views; the job sinks each
--         to its topic)
-- Params: ${window_size_s}, ${window_slide_s}, ${session_gap_s}
--
-- Python stays off the hot path: percentiles are Flink's built-in PERCENTILE, and the
-- country / browser / device UDFs run once per client and window, after aggregation.

-- Numeric path segments become {id} so /product/123 and /product/456 are one path.
CREATE TEMPORARY VIEW access_paths AS
SELECT
  REGEXP_REPLACE(SPLIT_INDEX(path, '?', 0), '/[0-9]+', '/{id}') AS path,
  status, `bytes`, latency_ms, client_ip, user_id, user_agent, event_time
FROM access_logs;

-- Per path and status: volume, server errors (5xx), latency percentiles, bytes.
CREATE TEMPORARY VIEW web_traffic AS
SELECT
  window_start,
  window_end,
  path,
  status,
  COUNT(*)                                                   AS requests,
  COUNT(*) FILTER (WHERE status >= 500)                      AS errors,
  CAST(COUNT(*) FILTER (WHERE status >= 500) AS DOUBLE) / COUNT(*) AS error_rate,
  PERCENTILE(latency_ms, 0.5)                                AS latency_p50,
  PERCENTILE(latency_ms, 0.95)                               AS latency_p95,
  SUM(`bytes`)                                                 AS `bytes`
FROM TABLE(
  HOP(TABLE access_paths, DESCRIPTOR(event_time),
      INTERVAL '${window_slide_s}' SECOND(6), INTERVAL '${window_size_s}' SECOND(6)))
GROUP BY window_start, window_end, path, status;

-- Per path over every status: the path's own latency percentiles. They cannot be derived from
-- web_traffic's per-status rows (percentiles do not merge), and the max of those lets a few slow
-- 500s stand for the whole path.
CREATE TEMPORARY VIEW path_latency AS
SELECT
  window_start,
  window_end,
  path,
  COUNT(*)                              AS requests,
  COUNT(*) FILTER (WHERE status >= 500) AS errors,
  PERCENTILE(latency_ms, 0.5)           AS latency_p50,
  PERCENTILE(latency_ms, 0.95)          AS latency_p95,
  PERCENTILE(latency_ms, 0.99)          AS latency_p99
FROM TABLE(
  HOP(TABLE access_paths, DESCRIPTOR(event_time),
      INTERVAL '${window_slide_s}' SECOND(6), INTERVAL '${window_size_s}' SECOND(6)))
GROUP BY window_start, window_end, path;

-- Per client: what it did, and who it is (country from the IP, browser/device from the UA).
CREATE TEMPORARY VIEW client_window AS
SELECT
  window_start,
  window_end,
  client_ip,
  MAX(user_agent)                         AS user_agent,   -- clients keep their UA
  COUNT(*)                                AS requests,
  COUNT(*) FILTER (WHERE status >= 400)   AS errors,       -- client view: 4xx count too
  SUM(`bytes`)                              AS `bytes`
FROM TABLE(
  HOP(TABLE access_paths, DESCRIPTOR(event_time),
      INTERVAL '${window_slide_s}' SECOND(6), INTERVAL '${window_size_s}' SECOND(6)))
GROUP BY window_start, window_end, client_ip;

CREATE TEMPORARY VIEW client_activity AS
SELECT
  window_start, window_end, client_ip,
  ip_country(client_ip)      AS country,
  browser_family(user_agent) AS browser,
  device_family(user_agent)  AS device,
  requests, errors, `bytes`
FROM client_window;

-- Visits per client: a session is a client's requests with no gap longer than ${session_gap_s}
-- seconds (SESSION window TVF per client_ip; SECOND(5) takes gaps up to 99,999 s, plain SECOND
-- two digits). Emitted once, when the watermark passes the last request + the gap. Pages are
-- its requests; duration runs from the first request to the last (0 for a single page: a
-- bounce); entry and exit are the first and last (normalised) path, the arg-min / arg-max of
-- "<sortable event time>|<path>" (equal times: the smaller path).
CREATE TEMPORARY VIEW web_sessions AS
SELECT
  session_start,
  session_end,
  client_ip,
  user_id,
  pages,
  CAST(
    (EXTRACT(EPOCH FROM session_end) * 1000 + EXTRACT(MILLISECOND FROM session_end))
    - (EXTRACT(EPOCH FROM session_start) * 1000 + EXTRACT(MILLISECOND FROM session_start))
    AS DOUBLE) / 1000.0 AS duration_s,
  pages = 1 AS bounce,
  SUBSTRING(entry_key FROM 19) AS entry_path,
  SUBSTRING(exit_key FROM 19) AS exit_path,
  errors,
  `bytes`
FROM (
  SELECT
    window_start,
    window_end,
    client_ip,
    MIN(event_time)                                         AS session_start,
    MAX(event_time)                                         AS session_end,
    MAX(user_id)                                            AS user_id,
    CAST(COUNT(*) AS INT)                                   AS pages,
    CAST(COUNT(*) FILTER (WHERE status >= 400) AS INT)      AS errors,
    SUM(`bytes`)                                            AS `bytes`,
    MIN(DATE_FORMAT(event_time, 'yyyyMMddHHmmssSSS') || '|' || path) AS entry_key,
    MAX(DATE_FORMAT(event_time, 'yyyyMMddHHmmssSSS') || '|' || path) AS exit_key
  FROM TABLE(
    SESSION(TABLE access_paths PARTITION BY client_ip, DESCRIPTOR(event_time),
            INTERVAL '${session_gap_s}' SECOND(5)))
  GROUP BY window_start, window_end, client_ip
);
