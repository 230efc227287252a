-- 011_device_assignments: sensor readings attributed by the devices reference table.
--
-- device_stats joins each sensor reading with its device's assignment (home, room, owner) in force
-- at the event's time: the compacted topic iot.devices, read as a
-- versioned table (docs/techniques.md). device_stats gets the owner and assigned_at, the time of
-- the assignment its readings were attributed by (the epoch: the device was in no reference
-- table, its readings' own home and room). A window in which a device moved has one row per
-- assignment, so assigned_at joins the sorting key: the two rows are not one replaced row.
-- (A column added to the sorting key may have no default expression: its type's default, the
-- epoch, fills the rows written before.) Rows written before this migration read '' for the
-- owner. (security_events is not enriched: docs/techniques.md.)
ALTER TABLE {database}.device_stats
    ADD COLUMN IF NOT EXISTS owner String DEFAULT '',
    ADD COLUMN IF NOT EXISTS assigned_at DateTime64(3, 'UTC'),
    MODIFY ORDER BY (window_end, device_id, sensor_type, window_start, assigned_at);
