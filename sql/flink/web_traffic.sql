-- web_traffic: access logs per path/status and per client over sliding windows.
--
-- Input : access_logs (decoded, on-time AccessLog rows; event_time is the rowtime)
-- Output: web_traffic, path_latency, client_activity (views; the job sinks each to its topic)
-- Params: ${window_size_s}, ${window_slide_s}
--
-- Python stays off the hot path: percentiles are Flink's built-in PERCENTILE, and the
-- country / browser / device UDFs run once per client and window, after aggregation.

-- Numeric path segments become {id} so /product/123 and /product/456 are one path.
CREATE TEMPORARY VIEW access_paths AS
SELECT
  REGEXP_REPLACE(SPLIT_INDEX(path, '?', 0), '/[0-9]+', '/{id}') AS path,
  status, `bytes`, latency_ms, client_ip, user_agent, event_time
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
      INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND))
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
      INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND))
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
      INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND))
GROUP BY window_start, window_end, client_ip;

CREATE TEMPORARY VIEW client_activity AS
SELECT
  window_start, window_end, client_ip,
  ip_country(client_ip)      AS country,
  browser_family(user_agent) AS browser,
  device_family(user_agent)  AS device,
  requests, errors, `bytes`
FROM client_window;
