"""A Confluent Schema Registry–compatible service for the local stack.

Its state (schemas, subject versions, compatibility config) is an append-only log in a compacted
Kafka topic (default ``_schemas``), replayed on start, so schema ids survive restarts. Avro
compatibility follows Avro's own schema-resolution rules (the ``avro`` package's checker).
Run it with ``python -m flinkpulse.registry`` or as the ``registry`` stack component.
"""
