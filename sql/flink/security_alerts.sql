-- security_alerts: CEP rules (MATCH_RECOGNIZE) and a threshold rule, one alert stream.
--
-- Inputs: security_events, access_logs, player_events, sensor_readings (decoded, on-time),
--         rule_changes (config.rules: rule, scope, param, value, ..., changed_at event time)
-- Output: alerts (every rule, one schema), security_events (raw events for ClickHouse)
-- (security_events_in is the decoded source; the other three sources are dead-lettered by
-- the job that owns them, so a bad record lands in its DLQ once)
-- Params: ${brute_force_failures}, ${brute_force_window_s}, ${kill_rate_kills},
--         ${kill_rate_window_s}, ${energy_threshold_w}, ${energy_window_s},
--         ${incident_gap_s}, ${incident_escalate_after}
--
-- Python UDFs are not allowed inside MATCH_RECOGNIZE; anything a pattern needs is plain SQL
-- in an upstream view.
--
-- Alerts are incidents. Each rule view emits one row per match (a pattern match, or a window
-- over the threshold) with `rt`, the event time at which it became detectable. Matches of one
-- (rule, entity) that follow each other within ${incident_gap_s} seconds are one incident;
-- every match after the first is an update of it: same alert_id (rule:entity:incident start),
-- a growing event_count, occurrences and version, the newest last_event_time, a severity that
-- escalates. alert_id is deterministic, so a replay produces the same ids and ClickHouse keeps
-- the highest version of each.

-- Live rule parameters (flinkpulse rules set|unset): the newest change of each (rule, scope) as
-- of any event time - a versioned table (primary key rule, scope; version time changed_at).
-- A match is joined with it AS OF its own event time: a change applies to matches whose event
-- time is at or after it, never to earlier ones, and a replay gives the same alerts. The
-- entity's own setting ('home:<id>', 'ip:<addr>') wins over 'global', 'global' over the job's
-- configured ${param}; a removed setting (value NULL) falls through (docs/rules.md).
--
-- The join key is one column, '<rule>/<scope>' (the topic's Kafka key). Its global form is built
-- from the entity column (|| SUBSTR(entity, 1, 0), an empty string): a constant temporal-join
-- key is folded away by the planner, which then fails to generate code for it.
CREATE TEMPORARY VIEW rules AS
SELECT rule_key, `value`, changed_at
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY rule_key ORDER BY changed_at DESC) AS rn
  FROM (SELECT rule || '/' || `scope` AS rule_key, `value`, changed_at FROM rule_changes)
)
WHERE rn = 1;

-- Raw security events, as they are, for the security event log. Not enriched with the devices
-- reference table: an event-time temporal join emits a row only once the watermark passes it,
-- so a quiet home's last door event would stay out of the log until its next event; a log
-- must show an event when it happens (docs/techniques.md).
CREATE TEMPORARY VIEW security_events AS
SELECT event_id, home_id, device_id, room, kind, event_time
FROM security_events_in;

-- door_open_while_armed: a door opens after ARM_AWAY with no DISARM in between.
CREATE TEMPORARY VIEW alert_door_open_while_armed AS
SELECT
  'door_open_while_armed' AS rule,
  'CRITICAL' AS severity,
  'home' AS entity_type,
  home_id AS entity_id,
  'Door ' || door_device || ' (' || door_room || ') opened while home ' || home_id || ' was armed away' AS summary,
  CAST(event_count AS INT) AS event_count,
  CAST(armed_at AS TIMESTAMP(3)) AS first_event_time,  -- plain timestamps: rt is the time
  CAST(opened_at AS TIMESTAMP(3)) AS last_event_time,  -- attribute
  MAP['device_id', COALESCE(door_device, ''), 'room', COALESCE(door_room, '')] AS attributes,
  rt
FROM security_events_in
MATCH_RECOGNIZE (
  PARTITION BY home_id
  ORDER BY event_time
  MEASURES
    A.event_time       AS armed_at,
    D.event_time       AS opened_at,
    D.device_id        AS door_device,
    D.room             AS door_room,
    COUNT(*)           AS event_count,
    MATCH_ROWTIME()     AS rt
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A N*? D)
  DEFINE
    A AS A.kind = 'ARM_AWAY',
    N AS N.kind <> 'DISARM',
    D AS D.kind = 'DOOR_OPEN'
);

-- motion_while_away: motion after ARM_AWAY with no DISARM in between.
CREATE TEMPORARY VIEW alert_motion_while_away AS
SELECT
  'motion_while_away' AS rule,
  'WARNING' AS severity,
  'home' AS entity_type,
  home_id AS entity_id,
  'Motion at ' || motion_device || ' (' || motion_room || ') while home ' || home_id || ' was armed away' AS summary,
  CAST(event_count AS INT) AS event_count,
  CAST(armed_at AS TIMESTAMP(3)) AS first_event_time,
  CAST(motion_at AS TIMESTAMP(3)) AS last_event_time,
  MAP['device_id', COALESCE(motion_device, ''), 'room', COALESCE(motion_room, '')] AS attributes,
  rt
FROM security_events_in
MATCH_RECOGNIZE (
  PARTITION BY home_id
  ORDER BY event_time
  MEASURES
    A.event_time       AS armed_at,
    M.event_time       AS motion_at,
    M.device_id        AS motion_device,
    M.room             AS motion_room,
    COUNT(*)           AS event_count,
    MATCH_ROWTIME()     AS rt
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A N*? M)
  DEFINE
    A AS A.kind = 'ARM_AWAY',
    N AS N.kind <> 'DISARM',
    M AS M.kind = 'MOTION'
);

-- brute_force_login: >= N failed logins (401/403 on POST /login) from one IP within the
-- window, then a successful one. Only login attempts take part in the pattern.
CREATE TEMPORARY VIEW login_attempts AS
SELECT client_ip, status, user_id, event_time
FROM access_logs
WHERE `method` = 'POST' AND path LIKE '/login%';

-- The pattern takes any number of failures; the live count (rules) filters the matches below.
-- Same matches as F{count,} S: a shorter run of failures ends at its success either way.
CREATE TEMPORARY VIEW brute_force_matches AS
SELECT client_ip, first_failure, success_at, failures, user_id, rt,
  'brute_force_login/ip:' || client_ip AS own_key,
  'brute_force_login/global' || SUBSTR(client_ip, 1, 0) AS global_key
FROM login_attempts
MATCH_RECOGNIZE (
  PARTITION BY client_ip
  ORDER BY event_time
  MEASURES
    FIRST(F.event_time) AS first_failure,
    S.event_time        AS success_at,
    COUNT(F.status)     AS failures,
    S.user_id           AS user_id,
    MATCH_ROWTIME()     AS rt
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (F+ S) WITHIN INTERVAL '${brute_force_window_s}' SECOND
  DEFINE
    F AS F.status IN (401, 403),
    S AS S.status < 400
);

CREATE TEMPORARY VIEW brute_force_counted AS
SELECT m.client_ip, m.first_failure, m.success_at, m.failures, m.user_id, m.rt,
  CAST(COALESCE(o.`value`, g.`value`, ${brute_force_failures}) AS BIGINT) AS min_failures
FROM brute_force_matches AS m
LEFT JOIN rules FOR SYSTEM_TIME AS OF m.rt AS o ON o.rule_key = m.own_key
LEFT JOIN rules FOR SYSTEM_TIME AS OF m.rt AS g ON g.rule_key = m.global_key;

CREATE TEMPORARY VIEW alert_brute_force_login AS
SELECT
  'brute_force_login' AS rule,
  'CRITICAL' AS severity,
  'client_ip' AS entity_type,
  client_ip AS entity_id,
  CAST(failures AS STRING) || ' failed logins from ' || client_ip || ' (' || ip_country(client_ip) || ') then a successful login' || COALESCE(' as ' || user_id, '') AS summary,
  CAST(failures + 1 AS INT) AS event_count,
  CAST(first_failure AS TIMESTAMP(3)) AS first_event_time,
  CAST(success_at AS TIMESTAMP(3)) AS last_event_time,
  MAP['failures', COALESCE(CAST(failures AS STRING), ''), 'country', COALESCE(ip_country(client_ip), ''), 'user_id', COALESCE(user_id, ''), 'min_failures', COALESCE(CAST(min_failures AS STRING), '')] AS attributes,
  rt
FROM brute_force_counted
WHERE failures >= min_failures;

-- impossible_kill_rate: N kills by one player within a few seconds.
CREATE TEMPORARY VIEW kills AS
SELECT player_id, match_id, weapon, headshot, event_time
FROM player_events
WHERE event_type = 'KILL';

CREATE TEMPORARY VIEW alert_impossible_kill_rate AS
SELECT
  'impossible_kill_rate' AS rule,
  'WARNING' AS severity,
  'player' AS entity_type,
  player_id AS entity_id,
  'Player ' || player_id || ' made ' || CAST(n AS STRING) || ' kills in ' || CAST(TIMESTAMPDIFF(SECOND, first_kill, last_kill) AS STRING) || ' s (match ' || match_id || ')' AS summary,
  CAST(n AS INT) AS event_count,
  CAST(first_kill AS TIMESTAMP(3)) AS first_event_time,
  CAST(last_kill AS TIMESTAMP(3)) AS last_event_time,
  MAP['match_id', COALESCE(match_id, ''), 'headshots', COALESCE(CAST(headshots AS STRING), '')] AS attributes,
  rt
FROM kills
MATCH_RECOGNIZE (
  PARTITION BY player_id
  ORDER BY event_time
  MEASURES
    FIRST(K.event_time) AS first_kill,
    LAST(K.event_time)  AS last_kill,
    COUNT(K.event_time) AS n,
    LAST(K.match_id)    AS match_id,
    SUM(CASE WHEN K.headshot THEN 1 ELSE 0 END) AS headshots,
    MATCH_ROWTIME()     AS rt
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (K{${kill_rate_kills}}) WITHIN INTERVAL '${kill_rate_window_s}' SECOND
  DEFINE
    K AS TRUE
);

-- energy_over_threshold: a home's total average power over a tumbling window above the
-- threshold. Average per device first, then the sum over the home's devices.
CREATE TEMPORARY VIEW device_power AS
SELECT window_time AS rt, home_id, device_id,
       AVG(`value`) AS avg_w, MIN(event_time) AS first_t, MAX(event_time) AS last_t,
       COUNT(*) AS n
FROM TABLE(TUMBLE(TABLE sensor_readings, DESCRIPTOR(event_time), INTERVAL '${energy_window_s}' SECOND))
WHERE sensor_type = 'POWER'
GROUP BY window_start, window_end, window_time, home_id, device_id;

CREATE TEMPORARY VIEW home_power AS
SELECT window_start, window_end, window_time, home_id, SUM(avg_w) AS total_w,
       MIN(first_t) AS first_t, MAX(last_t) AS last_t, SUM(n) AS n, COUNT(*) AS devices
FROM TABLE(TUMBLE(TABLE device_power, DESCRIPTOR(rt), INTERVAL '${energy_window_s}' SECOND))
GROUP BY window_start, window_end, window_time, home_id;

-- The home's threshold in force at the end of the window (window_time): its own, else global,
-- else ${energy_threshold_w}.
CREATE TEMPORARY VIEW home_power_threshold AS
SELECT p.window_time, p.home_id, p.total_w, p.first_t, p.last_t, p.n, p.devices,
  CAST(COALESCE(o.`value`, g.`value`, ${energy_threshold_w}) AS DOUBLE) AS threshold_w
FROM (
  SELECT *, 'energy_over_threshold/home:' || home_id AS own_key,
    'energy_over_threshold/global' || SUBSTR(home_id, 1, 0) AS global_key
  FROM home_power
) AS p
LEFT JOIN rules FOR SYSTEM_TIME AS OF p.window_time AS o ON o.rule_key = p.own_key
LEFT JOIN rules FOR SYSTEM_TIME AS OF p.window_time AS g ON g.rule_key = p.global_key;

CREATE TEMPORARY VIEW alert_energy_over_threshold AS
SELECT
  'energy_over_threshold' AS rule,
  'WARNING' AS severity,
  'home' AS entity_type,
  home_id AS entity_id,
  'Home ' || home_id || ' drew ' || CAST(CAST(ROUND(total_w, 0) AS BIGINT) AS STRING) || ' W on average (threshold ' || CAST(CAST(ROUND(threshold_w, 0) AS BIGINT) AS STRING) || ' W)' AS summary,
  CAST(n AS INT) AS event_count,
  CAST(first_t AS TIMESTAMP(3)) AS first_event_time,
  CAST(last_t AS TIMESTAMP(3)) AS last_event_time,
  MAP['total_w', COALESCE(CAST(ROUND(total_w, 1) AS STRING), ''), 'devices', COALESCE(CAST(devices AS STRING), ''), 'threshold_w', COALESCE(CAST(ROUND(threshold_w, 1) AS STRING), '')] AS attributes,
  window_time AS rt
FROM home_power_threshold
WHERE total_w > threshold_w;

-- Every rule's matches in one stream, one row per match. The incident views below order a
-- (rule, entity)'s matches by arrival (processing time), not by rt: the rule views come from
-- four sources whose watermarks differ (a source may be idle while another moves on), so an
-- event-time OVER after this union would drop a rule's matches as late once another source's
-- watermark has passed them. Arrival order is event-time order here: all matches of one
-- (rule, entity) come from one operator instance (the MATCH_RECOGNIZE or window keyed by the
-- entity), which emits them in event-time order, over one FIFO channel.
CREATE TEMPORARY VIEW alert_matches AS
SELECT rule, severity, entity_type, entity_id, summary, event_count, first_event_time,
  last_event_time, attributes, CAST(rt AS TIMESTAMP(3)) AS rt, PROCTIME() AS arrival
FROM (
  SELECT * FROM alert_door_open_while_armed
  UNION ALL SELECT * FROM alert_motion_while_away
  UNION ALL SELECT * FROM alert_brute_force_login
  UNION ALL SELECT * FROM alert_impossible_kill_rate
  UNION ALL SELECT * FROM alert_energy_over_threshold
);

-- A match opens a new incident when it is the entity's first for the rule, or when it starts
-- more than ${incident_gap_s} s after the previous match ended (the gap closed the incident).
CREATE TEMPORARY VIEW alert_match_gaps AS
SELECT *,
  CASE
    WHEN prev_last_event_time IS NULL THEN TRUE
    WHEN first_event_time > prev_last_event_time + INTERVAL '${incident_gap_s}' SECOND THEN TRUE
    ELSE FALSE
  END AS opens_incident
FROM (
  SELECT *,
    LAG(last_event_time) OVER (PARTITION BY rule, entity_id ORDER BY arrival)
      AS prev_last_event_time
  FROM alert_matches
);

-- The incident each match belongs to: the start of the latest match that opened one.
CREATE TEMPORARY VIEW alert_match_incidents AS
SELECT rule, severity, entity_type, entity_id, summary, event_count, first_event_time,
  last_event_time, attributes, rt, arrival,
  MAX(CASE WHEN opens_incident THEN first_event_time END) OVER (
    PARTITION BY rule, entity_id ORDER BY arrival
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ) AS incident_start
FROM alert_match_gaps;

-- The incident's state after each of its matches: one update per match.
CREATE TEMPORARY VIEW alert_incidents AS
SELECT rule, entity_type, entity_id, incident_start, summary, attributes, rt,
  severity AS base_severity,
  SUM(event_count) OVER w     AS event_count,
  MAX(last_event_time) OVER w AS last_event_time,
  COUNT(*) OVER w             AS occurrences
FROM alert_match_incidents
WINDOW w AS (
  PARTITION BY rule, entity_id, incident_start ORDER BY arrival
  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
);

-- Every incident update into one stream. Severity escalates one level (INFO -> WARNING ->
-- CRITICAL) from the ${incident_escalate_after}th match on. detected_at is when Flink emitted
-- the update (UTC), never before the event time that made it possible (the match's last event,
-- or the end of an energy window). Columns in the order of avro_schemas/flinkpulse.alerts.Alert,
-- the schema the alerts topic is written with.
CREATE TEMPORARY VIEW alerts AS
SELECT
  CAST(COALESCE(rule || ':' || entity_id || ':' || DATE_FORMAT(incident_start,
    'yyyyMMddHHmmssSSS'), '') AS STRING)      AS alert_id,     -- NOT NULL everywhere: the Avro
  CAST(COALESCE(rule, '') AS STRING)          AS rule,         -- contract has no optional fields
  CAST(
    CASE
      WHEN occurrences < ${incident_escalate_after} THEN COALESCE(base_severity, 'INFO')
      WHEN base_severity = 'INFO' THEN 'WARNING'
      ELSE 'CRITICAL'
    END AS STRING)                            AS severity,
  CAST(COALESCE(entity_type, '') AS STRING)   AS entity_type,
  CAST(COALESCE(entity_id, '') AS STRING)     AS entity_id,
  CAST(
    COALESCE(summary, '') ||
    CASE WHEN occurrences > 1
      THEN COALESCE(' [' || CAST(occurrences AS STRING) || ' matches since '
           || DATE_FORMAT(incident_start, 'HH:mm:ss') || ' UTC]', '')
      ELSE '' END AS STRING)                  AS summary,
  COALESCE(incident_start, TIMESTAMP '1970-01-01 00:00:00.000')  AS first_event_time,
  COALESCE(last_event_time, TIMESTAMP '1970-01-01 00:00:00.000') AS last_event_time,
  GREATEST(
    CAST(CURRENT_TIMESTAMP AS TIMESTAMP(3)),
    COALESCE(last_event_time, TIMESTAMP '1970-01-01 00:00:00.000'),
    rt
  )                                                              AS detected_at,
  CAST(attributes AS MAP<STRING NOT NULL, STRING NOT NULL>)      AS attributes,
  CAST(COALESCE(event_count, 0) AS INT)       AS event_count,
  CAST(occurrences AS INT)                    AS occurrences,
  CAST(occurrences AS BIGINT)                 AS version
FROM alert_incidents;
