-- 003_views: query-time views over the loaded tables.
--
-- FINAL collapses replayed windows (ReplacingMergeTree) so the rankings never count a window
-- twice. Filter them by window_end in the outer query; ClickHouse computes the window
-- functions over what the inner SELECT returns.

-- "Energy hogs": appliances ranked by energy (kWh) within each HOP window, across all homes
-- (hog_rank) and within their home (home_rank). 1 = the biggest consumer; ties share a rank.
-- Flink cannot rank after a group window in an append-only stream, so the rank lives here.
CREATE VIEW IF NOT EXISTS {database}.energy_hogs AS
SELECT
    window_start,
    window_end,
    home_id,
    appliance,
    kwh,
    avg_power_w,
    max_power_w,
    toUInt16(rank() OVER (PARTITION BY window_start, window_end ORDER BY kwh DESC)) AS hog_rank,
    toUInt16(rank() OVER (PARTITION BY window_start, window_end, home_id ORDER BY kwh DESC))
        AS home_rank
FROM {database}.energy_usage FINAL;
