"""The loader's decoder: the core's Confluent wire format and registry client (flinkpulse.avro),
with timestamps (``timestamp-millis``) decoded as plain epoch milliseconds: that is what Arrow's
``timestamp[ms]`` takes directly, and it avoids a datetime object per value.
"""

from __future__ import annotations

from flinkpulse.avro import REGISTRY_TIMEOUT_S, DecodeError, Registry, RegistryUnavailable

__all__ = ["DecodeError", "Decoder", "RegistryUnavailable"]


class Decoder(Registry):
    """Decodes Confluent wire-format values (writer schema, timestamps as epoch ms); one registry
    lookup per schema id, then cached. ``raw[id]`` is the schema as registered."""

    def __init__(self, registry_url: str, timeout: float = REGISTRY_TIMEOUT_S) -> None:
        super().__init__(registry_url, timeout, millis_as_long=True)
