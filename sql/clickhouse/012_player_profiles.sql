-- 012_player_profiles: player windows with the player's region and skill tier.
--
-- player_stats joins each player window with the reference table gaming.players as of the
-- window's end (an event-time temporal join, docs/techniques.md): the profile in force then.
-- One row per window and player as before, so the sorting key stays; '' is a window of a
-- player without a profile, and every row written before this migration.
ALTER TABLE {database}.player_stats
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS skill_tier LowCardinality(String) DEFAULT '';
