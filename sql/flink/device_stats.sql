-- device_stats: smart-home sensors per device and sensor type, and energy per home/appliance.
--
-- Input : sensor_readings (decoded, on-time SensorReading rows; event_time is the rowtime)
-- Output: device_stats, energy_usage (views; the job sinks each to its topic)
-- Params: ${window_size_s}, ${window_slide_s}

-- avg/min/max/last per device and sensor type. "last" is the reading with the latest event
-- time: LAST_VALUE cannot merge the slices of a HOP window, so the latest reading is found as
-- the MAX of "<sortable event time>|<value>" strings (an arg-max that merges) and split again.
CREATE TEMPORARY VIEW device_stats AS
SELECT
  window_start,
  window_end,
  device_id,
  MAX(home_id)           AS home_id,   -- a device belongs to one home and room
  MAX(room)              AS room,
  sensor_type,
  MAX(unit)              AS unit,
  CAST(COUNT(*) AS INT)  AS samples,
  AVG(`value`)           AS avg_value,
  MIN(`value`)           AS min_value,
  MAX(`value`)           AS max_value,
  CAST(SPLIT_INDEX(
    MAX(DATE_FORMAT(event_time, 'yyyyMMddHHmmssSSS') || '|' || CAST(`value` AS STRING)),
    '|', 1) AS DOUBLE)   AS `last_value`
FROM TABLE(
  HOP(TABLE sensor_readings, DESCRIPTOR(event_time),
      INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND))
GROUP BY window_start, window_end, device_id, sensor_type;

-- Energy per home and appliance: power samples (W) integrated into kWh by the energy_kwh
-- Python UDAF (trapezoidal rule over the time-sorted samples of the window). A Python UDAF
-- inside a window TVF runs as an updating aggregate, which an append-only topic cannot take;
-- the group-window form GROUP BY HOP(...) emits each window once, when it closes.
-- The "energy hogs" ranking is the order of kwh within a window: ClickHouse ranks at query
-- time (a ranking after a group window would again be an updating stream).
CREATE TEMPORARY VIEW energy_usage AS
SELECT
  HOP_START(event_time, INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND) AS window_start,
  HOP_END(event_time, INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND)   AS window_end,
  home_id,
  appliance,
  energy_kwh(`value`, event_time) AS kwh,
  AVG(`value`)                    AS avg_power_w,
  MAX(`value`)                    AS max_power_w
FROM sensor_readings
WHERE sensor_type = 'POWER' AND appliance IS NOT NULL
GROUP BY
  HOP(event_time, INTERVAL '${window_slide_s}' SECOND, INTERVAL '${window_size_s}' SECOND),
  home_id, appliance;
