-- devices: where each device is, as of any event time (the reference table iot.devices).
--
-- Input : device_changes (iot.devices: device_id, home_id, room, owner; updated_at is the
--         version time, the record's Kafka timestamp)
-- Output: devices (a versioned table: primary key device_id, version time updated_at)
-- Params: none
--
-- Run before the SQL of every job that reads iot.devices (flinkpulse.topics.VERSIONED): its
-- events are joined with `devices` FOR SYSTEM_TIME AS OF their own event time, so a device
-- moved at T is attributed to its old home and room before T and to the new ones from T on.
-- The newest assignment of each device as of a time: Flink reads this deduplication (ROW_NUMBER
-- ordered by the time attribute, descending, rn = 1) as a versioned view.
CREATE TEMPORARY VIEW devices AS
SELECT device_id, home_id, room, owner, updated_at
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY updated_at DESC) AS rn
  FROM device_changes
)
WHERE rn = 1;
