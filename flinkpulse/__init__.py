"""flinkpulse: real-time analytics with Apache Flink, Kafka, ClickHouse and Superset."""

__version__ = "0.1.0"
