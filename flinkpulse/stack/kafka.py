"""Apache Kafka broker, KRaft single node (broker + controller), run from Maven Central jars."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from flinkpulse.stack.base import Component, Proc
from flinkpulse.stack.java import jars_dir, java_bin

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
# per topic and partition lines (replayed, loaded, deleted): a test session makes and deletes
# thousands of topics: 856 MB of log in nine hours of a dev stack, 79% of it these. LogManager's
# "Created log for partition ..." (15%) stays: the one line that tells a topic reached the broker
logger.replication.name = org.apache.kafka.controller.ReplicationControlManager
logger.replication.level = WARN
logger.partitionchange.name = org.apache.kafka.controller.PartitionChangeBuilder
logger.partitionchange.level = WARN
logger.topicconfig.name = org.apache.kafka.controller.ConfigurationControlManager
logger.topicconfig.level = WARN
logger.dynconfig.name = kafka.server.metadata.DynamicConfigPublisher
logger.dynconfig.level = WARN
logger.storage.name = org.apache.kafka.storage.internals.log
logger.storage.level = WARN
logger.partition.name = kafka.cluster.Partition
logger.partition.level = WARN
logger.fetchers.name = kafka.server.ReplicaFetcherManager
logger.fetchers.level = WARN
logger.alterdirs.name = kafka.server.ReplicaAlterLogDirsManager
logger.alterdirs.level = WARN
"""


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes in URL-safe base64, never starting with "-".

    Kafka's own ``random-uuid`` avoids a leading "-" too, since tools read it as an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class Kafka(Component):
    name = "kafka"
    settings = ("stack.host", "stack.kafka_*")

    def ports(self) -> list[int]:
        return [self.cfg.stack.kafka_port, self.cfg.stack.kafka_controller_port]

    def address(self) -> str:
        return f"{self.cfg.stack.host}:{self.cfg.stack.kafka_port}"

    def _classpath(self) -> str:
        return str(jars_dir(self.cfg, "kafka")) + "/*"

    def java(self, main: str, *args: str, heap: str = "256m") -> list[str]:
        """Command line running a Kafka main class (broker or tool) from our jars."""
        return [
            java_bin(),
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1" if main != "kafka.Kafka" else "-XX:+UseStringDeduplication",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    @property
    def props_file(self) -> Path:
        """The broker's server.properties, written by prepare()."""
        return self.dir / "server.properties"

    def server_properties(self) -> str:
        s = self.cfg.stack
        h = s.host
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={h}:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://{h}:{s.kafka_port},CONTROLLER://{h}:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{h}:{s.kafka_port},"
                f"CONTROLLER://{h}:{s.kafka_controller_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.dir / 'data'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # Flink's exactly-once sink keeps transactions open up to its own timeout.
                "transaction.max.timeout.ms=3600000",
                "message.max.bytes=4194304",
                "auto.create.topics.enable=true",
                # Retention by size, not time: Kafka deletes a segment once its newest record
                # timestamp is older than retention.ms, and simulated-clock data (backfills,
                # scripted scenarios, the tests' fixed dates) carries past timestamps, so a
                # time limit deleted it minutes after it was written. 1 GiB per partition.
                "log.retention.ms=-1",
                "log.retention.bytes=1073741824",
                "log.segment.bytes=134217728",
                "",
            ]
        )

    def prepare(self) -> None:
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        self.props_file.write_text(self.server_properties())
        if not (self.dir / "data" / "meta.properties").exists():
            import subprocess

            res = subprocess.run(
                self.format_command(new_cluster_id()), capture_output=True, text=True
            )
            if res.returncode != 0:
                from flinkpulse.errors import FlinkpulseError

                raise FlinkpulseError(
                    f"formatting Kafka storage failed: {(res.stderr or res.stdout).strip()}"
                )

    def format_command(self, cluster_id: str) -> list[str]:
        """The StorageTool command that formats the data dir for ``cluster_id``.

        A random id starts with "-" one time in 64; as a separate argument the tool's
        parser takes it for an option, so the id is joined to its flag with "=".
        """
        return self.java(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            f"--config={self.props_file}",
            "--standalone",
            "--ignore-formatted",
        )

    def procs(self) -> list[Proc]:
        heap = self.cfg.stack.kafka_heap
        cmd = self.java("kafka.Kafka", str(self.props_file), heap=heap)
        cmd.insert(1, f"-Xms{heap}")
        return [Proc("kafka", cmd)]

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        from flinkpulse.stack.base import port_in_use

        if not port_in_use(self.cfg.stack.host, self.cfg.stack.kafka_port):
            return False
        admin = AdminClient(
            {"bootstrap.servers": self.address(), "socket.timeout.ms": 2000, "log_level": 0}
        )
        try:
            # the cluster's nodes, not its topic list: that took 0.8 s at 4,000 topics, and a
            # long test session creates more, towards this 3 s timeout
            cluster = admin.describe_cluster(request_timeout=3).result()
        except Exception:
            return False
        return bool(cluster.nodes)
