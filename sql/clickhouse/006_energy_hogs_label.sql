-- 006_energy_hogs_label: no unlabelled bar in "Energy hogs by appliance".
--
-- energy_usage.appliance is not Nullable: a record without an appliance is stored with ''
-- (the loader stores NULL as the column's default), which Superset draws as a bar without a
-- label. The view names it 'unassigned' instead; otherwise it is 003_views.sql's energy_hogs.
CREATE OR REPLACE VIEW {database}.energy_hogs AS
SELECT
    e.window_start AS window_start,
    e.window_end AS window_end,
    e.home_id AS home_id,
    toLowCardinality(if(e.appliance = '', 'unassigned', e.appliance)) AS appliance,
    e.kwh AS kwh,
    e.avg_power_w AS avg_power_w,
    e.max_power_w AS max_power_w,
    toUInt16(rank() OVER (PARTITION BY e.window_start, e.window_end ORDER BY e.kwh DESC))
        AS hog_rank,
    toUInt16(rank() OVER (PARTITION BY e.window_start, e.window_end, e.home_id
        ORDER BY e.kwh DESC)) AS home_rank
FROM {database}.energy_usage AS e FINAL;
