-- flinkpulse catalog: every source topic as a table, for the Flink SQL client.
--
-- `flinkpulse sql` renders this file with your configuration (Kafka, registry, topic prefix,
-- schemas) and passes it as the SQL client's init file. To use it with a plain
-- `sql-client.sh -i`, render it once: `flinkpulse sql --print-catalog > catalog.local.sql`.
--
-- Values are Avro in Confluent wire format. The reader schema is the newest .avsc of each
-- record (avro_schemas/): Flink cannot read an Avro enum into STRING with a schema derived
-- from the table, so each table names its schema explicitly, and the columns mirror it
-- (NOT NULL where the Avro field is not optional).
-- Every table has an event-time column with a bounded-out-of-orderness watermark.
-- The jobs themselves do not use these tables: they decode with dead-lettering instead.

CREATE TABLE IF NOT EXISTS player_events (
  event_id          STRING NOT NULL,
  match_id          STRING NOT NULL,
  player_id         STRING NOT NULL,
  team              STRING NOT NULL,
  event_type        STRING NOT NULL,   -- KILL, DEATH, ASSIST, DAMAGE, SPAWN
  target_player_id  STRING,
  damage            DOUBLE NOT NULL,
  headshot          BOOLEAN NOT NULL,
  weapon            STRING NOT NULL,
  event_time        TIMESTAMP(3) NOT NULL,
  platform          STRING,            -- v2
  `partition`       INT METADATA VIRTUAL,
  `offset`          BIGINT METADATA VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '${watermark_delay_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:gaming.player-events}',
  'properties.bootstrap.servers' = '${kafka.bootstrap_servers}',
  'properties.group.id' = 'flinkpulse-sql-client',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'avro-confluent',
  'avro-confluent.url' = '${registry.url}',
  'avro-confluent.schema' = '${schema:flinkpulse.gaming.PlayerEvent}'
);

CREATE TABLE IF NOT EXISTS sensor_readings (
  device_id    STRING NOT NULL,
  home_id      STRING NOT NULL,
  room         STRING NOT NULL,
  sensor_type  STRING NOT NULL,   -- TEMPERATURE, HUMIDITY, POWER, LIGHT, SWITCH
  `value`      DOUBLE NOT NULL,
  unit         STRING NOT NULL,
  appliance    STRING,
  event_time   TIMESTAMP(3) NOT NULL,
  `partition`  INT METADATA VIRTUAL,
  `offset`     BIGINT METADATA VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '${watermark_delay_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:iot.sensor-readings}',
  'properties.bootstrap.servers' = '${kafka.bootstrap_servers}',
  'properties.group.id' = 'flinkpulse-sql-client',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'avro-confluent',
  'avro-confluent.url' = '${registry.url}',
  'avro-confluent.schema' = '${schema:flinkpulse.iot.SensorReading}'
);

CREATE TABLE IF NOT EXISTS security_events (
  event_id     STRING NOT NULL,
  home_id      STRING NOT NULL,
  device_id    STRING NOT NULL,
  room         STRING NOT NULL,
  kind         STRING NOT NULL,   -- DOOR_OPEN, DOOR_CLOSE, MOTION, ARM_AWAY, DISARM
  event_time   TIMESTAMP(3) NOT NULL,
  `partition`  INT METADATA VIRTUAL,
  `offset`     BIGINT METADATA VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '${watermark_delay_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:iot.security-events}',
  'properties.bootstrap.servers' = '${kafka.bootstrap_servers}',
  'properties.group.id' = 'flinkpulse-sql-client',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'avro-confluent',
  'avro-confluent.url' = '${registry.url}',
  'avro-confluent.schema' = '${schema:flinkpulse.iot.SecurityEvent}'
);

CREATE TABLE IF NOT EXISTS access_logs (
  event_id     STRING NOT NULL,
  client_ip    STRING NOT NULL,
  user_id      STRING,
  session_id   STRING NOT NULL,
  `method`     STRING NOT NULL,
  path         STRING NOT NULL,
  status       INT NOT NULL,
  `bytes`      BIGINT NOT NULL,
  latency_ms   DOUBLE NOT NULL,
  user_agent   STRING NOT NULL,
  referrer     STRING,
  event_time   TIMESTAMP(3) NOT NULL,
  `partition`  INT METADATA VIRTUAL,
  `offset`     BIGINT METADATA VIRTUAL,
  WATERMARK FOR event_time AS event_time - INTERVAL '${watermark_delay_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic:web.access-logs}',
  'properties.bootstrap.servers' = '${kafka.bootstrap_servers}',
  'properties.group.id' = 'flinkpulse-sql-client',
  'scan.startup.mode' = 'earliest-offset',
  'format' = 'avro-confluent',
  'avro-confluent.url' = '${registry.url}',
  'avro-confluent.schema' = '${schema:flinkpulse.web.AccessLog}'
);
