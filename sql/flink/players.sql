-- players: each player's profile (region, skill tier) as of any event time (the reference table
-- gaming.players).
--
-- Input : player_changes (gaming.players: player_id, region, skill_tier; updated_at is the
--         version time, the record's Kafka timestamp)
-- Output: players (a versioned table: primary key player_id, version time updated_at)
-- Params: none
--
-- Run before the SQL of every job that reads gaming.players (flinkpulse.topics.VERSIONED), as
-- devices.sql for iot.devices: the newest profile of each player as of a time.
CREATE TEMPORARY VIEW players AS
SELECT player_id, region, skill_tier, updated_at
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY player_id ORDER BY updated_at DESC) AS rn
  FROM player_changes
)
WHERE rn = 1;
