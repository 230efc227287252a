"""Registry state and its durable log in a compacted Kafka topic.

Records use Confluent Schema Registry's own ``_schemas`` layout, so the topic reads familiar:

* key ``{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}`` -> value
  ``{"subject":S,"version":V,"id":ID,"schemaType":"AVRO","schema":TEXT,"deleted":bool}``;
  a hard delete writes a tombstone (null value) for that key.
* key ``{"keytype":"CONFIG","subject":S|null,"magic":0}`` -> ``{"compatibilityLevel":L}`` or a
  tombstone when a subject's level is removed.

One registry process writes a topic (single writer); every write is acknowledged by Kafka
(``acks=all``) before it is applied in memory and answered, and on start the whole topic is
replayed, so subjects, versions and ids survive restarts.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from flinkpulse.avro import RegistryError, resolve_references
from flinkpulse.registry import compat
from flinkpulse.topics import already_exists

#: registry modes: READONLY refuses writes; IMPORT registers schemas under given ids
MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")


def not_found_subject(s: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{s}' not found.")


def not_found_version(s: str, v: Any) -> RegistryError:
    return RegistryError(404, 40402, f"Version {v} not found.")


@dataclass
class Version:
    subject: str
    version: int
    id: int
    schema: str
    schema_type: str = "AVRO"
    deleted: bool = False
    #: schema references: ``{"name", "subject", "version"}`` of types defined elsewhere
    references: list[dict[str, Any]] = field(default_factory=list)


class Log:
    """The durable log: a compacted topic, written synchronously, replayed on start."""

    def __init__(self, client_conf: dict[str, str], topic: str) -> None:
        self.conf = client_conf
        self.topic = topic
        self._producer: Any = None

    def ensure_topic(self) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({**self.conf, "log_level": 0})
        spec = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=1,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        )
        for fut in admin.create_topics([spec], request_timeout=15).values():
            try:
                fut.result(timeout=20)
            except KafkaException as e:
                if not already_exists(e):
                    raise

    def replay(self) -> list[tuple[bytes, bytes | None]]:
        """Every record of the topic, in order (the whole history, up to the end)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer(
            {
                **self.conf,
                "group.id": "flinkpulse-registry-replay",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 0,
            }
        )
        try:
            low, high = self._watermarks(c)
            out: list[tuple[bytes, bytes | None]] = []
            if high <= low:
                return out
            c.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            while True:
                msg = c.poll(5.0)
                if msg is None:
                    raise RuntimeError(f"timed out replaying {self.topic}")
                if msg.error():
                    raise RuntimeError(f"replaying {self.topic}: {msg.error()}")
                out.append((msg.key() or b"", msg.value()))
                if (msg.offset() or 0) >= high - 1:
                    return out
        finally:
            c.close()

    def _watermarks(self, consumer: Any) -> tuple[int, int]:
        """(low, high) offsets; retried while a just-created topic elects its leader."""
        import time

        from confluent_kafka import KafkaException, TopicPartition

        deadline = time.monotonic() + 30
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=10
                )
                return int(low), int(high)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def append(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """Write one record and wait until Kafka acknowledged it."""
        from flinkpulse.producer import Producer

        if self._producer is None:
            self._producer = Producer(
                {**self.conf, "acks": "all", "enable.idempotence": True, "linger.ms": 0}
            )
        errors: list[Any] = []
        self._producer.produce(
            self.topic,
            key=_key_bytes(key),
            value=None if value is None else json.dumps(value).encode(),
            on_delivery=lambda err, _msg: errors.append(err),
        )
        left = self._producer.flush(15)
        if left or not errors or errors[0] is not None:
            reason = errors[0] if errors and errors[0] is not None else "delivery timed out"
            raise RegistryError(500, 50001, f"Error while storing to {self.topic}: {reason}")


def _key_bytes(key: dict[str, Any]) -> bytes:
    # fixed field order: compaction keys on the exact bytes
    order = ["keytype", "subject", "version", "magic"]
    return json.dumps({k: key[k] for k in order if k in key}, separators=(",", ":")).encode()


class State:
    """Subjects, versions, schemas by id and compatibility config; thread-safe, log-backed."""

    def __init__(self, log: Log | None) -> None:
        self.log = log
        self.lock = threading.RLock()
        self.subjects: dict[str, dict[int, Version]] = {}
        #: id -> (schema_type, schema text, references)
        self.ids: dict[int, tuple[str, str, list[dict[str, Any]]]] = {}
        #: (type, canonical form with references resolved, references) -> id
        self.by_canonical: dict[tuple[str, str], int] = {}
        self.max_id = 0
        self.global_level = compat.DEFAULT_LEVEL
        self.subject_level: dict[str, str] = {}
        self.global_mode = "READWRITE"
        self.subject_mode: dict[str, str] = {}

    # -- persistence ---------------------------------------------------------------------------
    def load(self) -> None:
        if self.log is None:
            return
        self.log.ensure_topic()
        for key_b, value_b in self.log.replay():
            try:
                key = json.loads(key_b)
                value = None if value_b is None else json.loads(value_b)
            except ValueError:
                continue  # not ours
            self._apply(key, value)

    def _write(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        if self.log is not None:
            self.log.append(key, value)
        self._apply(key, value)

    def _apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        kt = key.get("keytype")
        if kt == "SCHEMA":
            subject, version = key["subject"], int(key["version"])
            if value is None:
                self.subjects.get(subject, {}).pop(version, None)
                if subject in self.subjects and not self.subjects[subject]:
                    del self.subjects[subject]
                return
            v = Version(
                subject,
                version,
                int(value["id"]),
                value["schema"],
                value.get("schemaType") or "AVRO",
                bool(value.get("deleted", False)),
                list(value.get("references") or []),
            )
            self.subjects.setdefault(subject, {})[version] = v
            if v.id not in self.ids:
                self.ids[v.id] = (v.schema_type, v.schema, v.references)
                with contextlib.suppress(RegistryError):
                    self.by_canonical[self._key(v.schema, v.schema_type, v.references)] = v.id
            self.max_id = max(self.max_id, v.id)
        elif kt == "MODE":
            subject = key.get("subject")
            mode = None if value is None else value.get("mode")
            if subject is None:
                self.global_mode = mode or "READWRITE"
            elif mode is None:
                self.subject_mode.pop(subject, None)
            else:
                self.subject_mode[subject] = mode
        elif kt == "CONFIG":
            subject = key.get("subject")
            level = None if value is None else value.get("compatibilityLevel")
            if subject is None:
                self.global_level = level or compat.DEFAULT_LEVEL
            elif level is None:
                self.subject_level.pop(subject, None)
            else:
                self.subject_level[subject] = level

    # -- queries -------------------------------------------------------------------------------
    def subject_names(self, deleted: bool = False) -> list[str]:
        with self.lock:
            return sorted(
                s for s, vs in self.subjects.items() if vs and (deleted or self._live(vs))
            )

    @staticmethod
    def _live(vs: dict[int, Version]) -> list[Version]:
        return [v for _, v in sorted(vs.items()) if not v.deleted]

    def versions(self, subject: str, deleted: bool = False) -> list[Version]:
        with self.lock:
            vs = self.subjects.get(subject) or {}
            out = [v for _, v in sorted(vs.items()) if deleted or not v.deleted]
            if not out:
                raise not_found_subject(subject)
            return out

    def version(self, subject: str, ref: str, deleted: bool = False) -> Version:
        with self.lock:
            vs = self.versions(subject, deleted=True)
            live = [v for v in vs if deleted or not v.deleted]
            if ref in ("latest", "-1"):
                if not live:
                    raise not_found_subject(subject)
                return live[-1]
            try:
                n = int(ref)
            except ValueError:
                raise RegistryError(
                    422,
                    42202,
                    f"The specified version '{ref}' is not a valid version id. Allowed values "
                    'are between [1, 2^31-1] and the string "latest"',
                ) from None
            if n < 1:
                raise RegistryError(
                    422, 42202, f"The specified version '{ref}' is not a valid version id."
                )
            if not live:
                raise not_found_subject(subject)
            for v in live:
                if v.version == n:
                    return v
            raise not_found_version(subject, n)

    def schema_by_id(self, schema_id: int) -> tuple[str, str, list[dict[str, Any]]]:
        with self.lock:
            if schema_id not in self.ids or not any(
                v.id == schema_id for vs in self.subjects.values() for v in vs.values()
            ):
                raise RegistryError(404, 40403, f"Schema {schema_id} not found")
            return self.ids[schema_id]

    def id_usages(self, schema_id: int, deleted: bool = False) -> list[Version]:
        self.schema_by_id(schema_id)
        with self.lock:
            return [
                v
                for s in sorted(self.subjects)
                for _, v in sorted(self.subjects[s].items())
                if v.id == schema_id and (deleted or not v.deleted)
            ]

    def level(self, subject: str | None) -> str:
        with self.lock:
            if subject is not None and subject in self.subject_level:
                return self.subject_level[subject]
            return self.global_level

    # -- register / lookup ---------------------------------------------------------------------
    def lookup(
        self,
        subject: str,
        text: str,
        schema_type: str,
        deleted: bool = False,
        references: list[dict[str, Any]] | None = None,
    ) -> Version:
        with self.lock:
            if subject not in self.subjects or not (deleted or self._live(self.subjects[subject])):
                raise not_found_subject(subject)
            key = self._key(text, schema_type, references or [])
            for v in self.versions(subject, deleted=deleted):
                if self._key_safe(v) == key:
                    return v
            raise RegistryError(404, 40403, "Schema not found")

    # -- references ----------------------------------------------------------------------------
    def _fetch(self, subject: str, version: int) -> tuple[str, list[dict[str, Any]]]:
        vs = self.subjects.get(subject) or {}
        if version not in vs:
            raise RegistryError(
                422,
                42201,
                f"Invalid schema: reference to subject '{subject}' version {version} not found",
            )
        return vs[version].schema, vs[version].references

    def resolved(self, text: str, references: list[dict[str, Any]]) -> str:
        """`text` with its references inlined: the self-contained schema compat checks read."""
        if not references:
            return text
        for ref in references:
            if not {"name", "subject", "version"} <= set(ref):
                raise RegistryError(
                    422, 42201, "Invalid schema: a reference needs name, subject and version"
                )
        try:
            schema = json.loads(text)
        except ValueError as e:
            raise RegistryError(422, 42201, f"Invalid schema: {e}") from None
        return json.dumps(resolve_references(schema, references, self._fetch))

    def _key(
        self, text: str, schema_type: str, references: list[dict[str, Any]]
    ) -> tuple[str, str]:
        """What makes two registrations the same schema: type, canonical resolved form and
        references (Confluent: the same text with other references is another schema)."""
        canon = _canonical(self.resolved(text, references), schema_type)
        refs = json.dumps(
            [[r["name"], r["subject"], int(r["version"])] for r in references],
            separators=(",", ":"),
        )
        return schema_type, canon + refs

    def _key_safe(self, v: Version) -> tuple[str, str]:
        try:
            return self._key(v.schema, v.schema_type, v.references)
        except RegistryError:
            return v.schema_type, v.schema

    def referenced_by(self, subject: str, ref: str) -> list[int]:
        """Ids of the live schemas that reference `subject` version `ref`."""
        with self.lock:
            target = self.version(subject, ref, deleted=True)
            return sorted(
                {
                    v.id
                    for vs in self.subjects.values()
                    for v in vs.values()
                    if not v.deleted
                    and any(
                        r.get("subject") == subject and int(r.get("version", 0)) == target.version
                        for r in v.references
                    )
                }
            )

    def _refuse_if_referenced(self, subject: str, version: int) -> None:
        if self.referenced_by(subject, str(version)):
            raise RegistryError(
                422,
                42206,
                f"One or more references exist to the schema "
                f"{{magic=1,keytype=SCHEMA,subject={subject},version={version}}}.",
            )

    def incompatibilities(
        self,
        subject: str,
        text: str,
        schema_type: str,
        against: str | None = None,
        references: list[dict[str, Any]] | None = None,
    ) -> tuple[str, list[compat.Incompatibility]]:
        """(level, problems) of `text` against the subject's live versions (or one version),
        every referenced type resolved."""
        with self.lock:
            text = self.resolved(text, references or [])
            _canonical(text, schema_type)
            new = compat.parse(text)
            level = self.level(subject)
            live = self._live(self.subjects.get(subject) or {})
            if against is not None:
                one = self.version(subject, against)
                live = [one]
                if level.endswith("_TRANSITIVE"):
                    level = level.removesuffix("_TRANSITIVE")
            previous = [
                (v.version, compat.parse(self.resolved(v.schema, v.references))) for v in live
            ]
        return level, compat.check(new, previous, level)

    def register(
        self,
        subject: str,
        text: str,
        schema_type: str = "AVRO",
        references: list[dict[str, Any]] | None = None,
        schema_id: int | None = None,
        version: int | None = None,
        normalize: bool = False,
    ) -> int:
        """Register `text` under `subject`; its id. In IMPORT mode the caller gives the id (and
        version) and no compatibility check runs; ``normalize`` stores the canonical form."""
        self._writable(subject)
        importing = self.mode(subject) == "IMPORT"
        if schema_id is not None and not importing:
            raise RegistryError(422, 42205, f"Subject {subject} is not in import mode")
        if importing and schema_id is None:
            raise RegistryError(422, 42205, f"Subject {subject} is in import mode: give an id")
        references = [
            {"name": r.get("name"), "subject": r.get("subject"), "version": r.get("version")}
            for r in references or []
        ]
        with self.lock:
            key = self._key(text, schema_type, references)
            if normalize and not references:
                text = compat.canonical(text)
            text = json.dumps(json.loads(text), separators=(",", ":"))  # stored compact
            existing = self.subjects.get(subject) or {}
            for v in self._live(existing):
                if self._key_safe(v) == key:
                    return v.id
            if importing:
                assert schema_id is not None
                return self._import(subject, text, schema_type, references, schema_id, version, key)
            level, problems = self.incompatibilities(
                subject, text, schema_type, references=references
            )
            if problems:
                details = "; ".join(str(p) for p in problems)
                raise RegistryError(
                    409,
                    409,
                    f"Schema being registered is incompatible with an earlier schema for subject "
                    f'"{subject}" (compatibility {level}), details: {details}',
                )
            schema_id = self.by_canonical.get(key)
            if schema_id is None:
                schema_id = self.max_id + 1
            version = max(existing, default=0) + 1
            v = Version(subject, version, schema_id, text, schema_type, False, references)
            return self._put(v, key)

    def _import(
        self,
        subject: str,
        text: str,
        schema_type: str,
        references: list[dict[str, Any]],
        schema_id: int,
        version: int | None,
        key: tuple[str, str],
    ) -> int:
        """IMPORT mode: keep the given id (and version), as a migration from another registry."""
        if schema_id in self.ids and self.by_canonical.get(key) != schema_id:
            raise RegistryError(
                422, 42205, f"Overwrite new schema with id {schema_id} is not permitted."
            )
        existing = self.subjects.get(subject) or {}
        version = version or max(existing, default=0) + 1
        if version in existing:
            raise RegistryError(422, 42205, f"Subject {subject} already has a version {version}")
        return self._put(
            Version(subject, version, schema_id, text, schema_type, False, references), key
        )

    def _put(self, v: Version, key: tuple[str, str]) -> int:
        """Store a new version (durably first); its id."""
        self._write(
            {"keytype": "SCHEMA", "subject": v.subject, "version": v.version, "magic": 1},
            _value(v, deleted=False),
        )
        self.by_canonical[key] = v.id
        return v.id

    # -- deletes -------------------------------------------------------------------------------
    def delete_version(self, subject: str, ref: str, permanent: bool) -> int:
        self._writable(subject)
        with self.lock:
            if subject not in self.subjects:
                raise not_found_subject(subject)
            v = self.version(subject, ref, deleted=permanent)
            self._refuse_if_referenced(subject, v.version)
            key = {"keytype": "SCHEMA", "subject": subject, "version": v.version, "magic": 1}
            if permanent:
                if not v.deleted:
                    raise RegistryError(
                        404,
                        40407,
                        f"Subject '{subject}' Version {v.version} was not deleted first before "
                        "being permanently deleted",
                    )
                self._write(key, None)
            else:
                self._write(key, _value(v, deleted=True))
            return v.version

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        self._writable(subject)
        with self.lock:
            vs = self.subjects.get(subject)
            if not vs:
                raise not_found_subject(subject)
            live = self._live(vs)
            for n in sorted(vs):
                self._refuse_if_referenced(subject, n)
            if permanent:
                if live:
                    raise RegistryError(
                        404,
                        40405,
                        f"Subject '{subject}' was not deleted first before being permanently "
                        "deleted",
                    )
                gone = sorted(vs)
                for n in gone:
                    self._write(
                        {"keytype": "SCHEMA", "subject": subject, "version": n, "magic": 1}, None
                    )
                if subject in self.subject_level:
                    self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, None)
                return gone
            if not live:
                raise RegistryError(
                    404,
                    40404,
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently",
                )
            for v in live:
                self._write(
                    {"keytype": "SCHEMA", "subject": subject, "version": v.version, "magic": 1},
                    _value(v, deleted=True),
                )
            return [v.version for v in live]

    # -- mode ----------------------------------------------------------------------------------
    def mode(self, subject: str | None) -> str:
        with self.lock:
            if subject is not None and subject in self.subject_mode:
                return self.subject_mode[subject]
            return self.global_mode

    def set_mode(self, subject: str | None, mode: str, force: bool = False) -> str:
        mode = mode.upper()
        if mode not in MODES:
            raise RegistryError(422, 42204, f"Invalid mode. Valid values are {list(MODES)}")
        with self.lock:
            has = (
                self.subject_names()
                if subject is None
                else self._live(self.subjects.get(subject) or {})
            )
            if mode == "IMPORT" and has and not force:
                raise RegistryError(
                    422,
                    42205,
                    "Cannot import since found existing subjects (use force=true to override)",
                )
            self._write({"keytype": "MODE", "subject": subject, "magic": 0}, {"mode": mode})
        return mode

    def delete_mode(self, subject: str) -> str:
        with self.lock:
            if subject not in self.subject_mode:
                raise not_found_subject(subject)
            previous = self.subject_mode[subject]
            self._write({"keytype": "MODE", "subject": subject, "magic": 0}, None)
            return previous

    def _writable(self, subject: str) -> None:
        if self.mode(subject) in ("READONLY", "READONLY_OVERRIDE"):
            raise RegistryError(422, 42205, f"Subject {subject} is in read-only mode")

    # -- config --------------------------------------------------------------------------------
    def set_level(self, subject: str | None, level: str) -> str:
        level = level.upper()
        if level not in compat.LEVELS:
            raise RegistryError(
                422, 42203, f"Invalid compatibility level. Valid values are {list(compat.LEVELS)}"
            )
        with self.lock:
            self._write(
                {"keytype": "CONFIG", "subject": subject, "magic": 0},
                {"compatibilityLevel": level},
            )
        return level

    def delete_level(self, subject: str | None) -> str:
        with self.lock:
            previous = self.level(subject)
            if subject is None:
                self._write(
                    {"keytype": "CONFIG", "subject": None, "magic": 0},
                    {"compatibilityLevel": compat.DEFAULT_LEVEL},
                )
            elif subject in self.subject_level:
                self._write({"keytype": "CONFIG", "subject": subject, "magic": 0}, None)
            else:
                raise not_found_subject(subject)
            return previous


def _value(v: Version, deleted: bool) -> dict[str, Any]:
    return {
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schemaType": v.schema_type,
        "schema": v.schema,
        "deleted": deleted,
        **({"references": v.references} if v.references else {}),
    }


def _canonical(text: str, schema_type: str) -> str:
    if schema_type != "AVRO":
        raise RegistryError(
            422, 42201, f"Invalid schema: unsupported schema type {schema_type!r} (AVRO only)"
        )
    try:
        return compat.canonical(text)
    except compat.InvalidSchema as e:
        raise RegistryError(422, 42201, str(e)) from None
