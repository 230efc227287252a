-- player_stats: per-player, per-team and top-N statistics over sliding (HOP) windows.
--
-- Input : player_events   (decoded, on-time PlayerEvent rows; event_time is the rowtime),
--         players (the versioned table of gaming.players, sql/flink/players.sql, run first)
-- Output: player_stats, team_stats, leaderboard (views; the job sinks each to its topic)
-- Params: ${window_size_s}, ${window_slide_s}, ${top_n}
--
-- Events: a KILL by A of B comes with a DEATH of B (target A); ASSIST, DAMAGE and SPAWN are
-- counted where they help a responder or a dashboard. Damage is summed over every event type.

-- One row per player and window: the base of the three outputs.
CREATE TEMPORARY VIEW player_window AS
SELECT
  window_start,
  window_end,
  window_time,
  player_id,
  MAX(team)                                                       AS team,  -- fixed per match
  MAX(match_id)                                                   AS match_id,
  CAST(COUNT(*) FILTER (WHERE event_type = 'KILL') AS INT)        AS kills,
  CAST(COUNT(*) FILTER (WHERE event_type = 'DEATH') AS INT)       AS deaths,
  CAST(COUNT(*) FILTER (WHERE event_type = 'ASSIST') AS INT)      AS assists,
  COALESCE(SUM(damage), 0.0)                                      AS damage,
  CAST(COUNT(*) FILTER (WHERE event_type = 'KILL' AND headshot) AS INT) AS headshots
FROM TABLE(
  HOP(TABLE player_events, DESCRIPTOR(event_time),
      INTERVAL '${window_slide_s}' SECOND(6), INTERVAL '${window_size_s}' SECOND(6)))
GROUP BY window_start, window_end, window_time, player_id;

-- K/D ratio through the kd_ratio UDF (zero deaths: the kill count itself, never a division error).
-- Region and skill tier: the player's profile in force at the end of the window (an event-time
-- temporal join AS OF window_time, as the alert thresholds): a player promoted at T shows the
-- new tier in every window that ends after T, the old one before. NULL: no profile known.
CREATE TEMPORARY VIEW player_stats AS
SELECT
  w.window_start, w.window_end, w.player_id, w.team, w.match_id,
  w.kills, w.deaths, w.assists, w.damage, w.headshots,
  kd_ratio(w.kills, w.deaths) AS kd_ratio,
  p.region, p.skill_tier
FROM player_window AS w
LEFT JOIN players FOR SYSTEM_TIME AS OF w.window_time AS p ON p.player_id = w.player_id;

-- Per team and match: the sum of its players, K/D of the team as a whole.
CREATE TEMPORARY VIEW team_stats AS
SELECT
  window_start, window_end, match_id, team,
  CAST(COUNT(DISTINCT player_id) AS INT)                          AS players,
  CAST(COUNT(*) FILTER (WHERE event_type = 'KILL') AS INT)        AS kills,
  CAST(COUNT(*) FILTER (WHERE event_type = 'DEATH') AS INT)       AS deaths,
  COALESCE(SUM(damage), 0.0)                                      AS damage,
  kd_ratio(CAST(COUNT(*) FILTER (WHERE event_type = 'KILL') AS INT),
           CAST(COUNT(*) FILTER (WHERE event_type = 'DEATH') AS INT)) AS kd_ratio
FROM TABLE(
  HOP(TABLE player_events, DESCRIPTOR(event_time),
      INTERVAL '${window_slide_s}' SECOND(6), INTERVAL '${window_size_s}' SECOND(6)))
GROUP BY window_start, window_end, match_id, team;

-- Top-N players per window by score (window Top-N: emitted once per window, final).
-- score = 100*kills + 50*assists + 25*headshots + damage/10 - 30*deaths, in plain SQL: a Python
-- call between the window aggregate and the ranking would turn the window Top-N into an
-- updating Top-N, which an append-only Kafka topic cannot take.
-- Ties broken by fewer deaths, then player id, so the ranking is deterministic.
CREATE TEMPORARY VIEW leaderboard AS
SELECT
  window_start, window_end, CAST(rn AS INT) AS `rank`, player_id, team, kills, deaths,
  kd_ratio(kills, deaths) AS kd_ratio,
  score
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY window_start, window_end
      ORDER BY score DESC, deaths ASC, player_id ASC) AS rn
  FROM (
    SELECT
      window_start, window_end, player_id, team, kills, deaths,
      100.0 * kills + 50.0 * assists + 25.0 * headshots + damage / 10.0 - 30.0 * deaths AS score
    FROM player_window
  )
)
WHERE rn <= ${top_n};
