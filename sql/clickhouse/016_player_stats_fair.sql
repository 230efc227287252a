-- 016_player_stats_fair: player windows without the players flagged as cheaters.
--
-- Input: player_stats (results.player-stats), alert_incidents (004_incidents.sql).
-- Output: the view player_stats_fair, one row per player window, deduplicated (FINAL).
--
-- A player the impossible_kill_rate rule flagged has a K/D of 30-50 and takes every top spot of
-- a ranking by K/D. The K/D chart (Superset dataset player_stats_fair), the report's K/D
-- leaders and the demo's summary rank players from this view: one definition for the three.
-- The flagged players' incidents are on the Security dashboard and in the report's cheaters.
CREATE OR REPLACE VIEW {database}.player_stats_fair AS
SELECT
    s.window_start AS window_start,
    s.window_end AS window_end,
    s.player_id AS player_id,
    s.team AS team,
    s.kills AS kills,
    s.deaths AS deaths,
    s.kd_ratio AS kd_ratio
FROM {database}.player_stats AS s FINAL
WHERE s.player_id NOT IN (
    SELECT entity_id FROM {database}.alert_incidents WHERE rule = 'impossible_kill_rate');
