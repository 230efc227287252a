-- 015_loader_topics: the Kafka topic ID of each topic whose records this database holds.
--
-- A topic deleted and created again (or a Kafka whose data directory was reset) keeps its name
-- and restarts its offsets at 0, under a new topic ID. The loader resumes each partition from
-- max(_offset) + 1 of the rows it loaded (flinkpulse/loader/exactly_once.py), so rows of the
-- old topic would make it skip the new topic's first records. When it resumes, the loader
-- (flinkpulse/loader/core.py, `_check_topics`) compares the ID recorded here with Kafka's and
-- stops with how to start over if they differ; it records the current ID of every topic it
-- holds no rows of, and of topics loaded before this table existed.
CREATE TABLE IF NOT EXISTS {database}.loader_topics
(
    topic       String,
    topic_id    String,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY topic;
