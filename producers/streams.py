"""Pick and combine the domain generators: ``stream("all", ...)`` interleaves gaming, iot, web.

On a simulated clock (``TimeConfig.is_simulated``) every event comes with its Kafka timestamp:
``(key, record, topic, ts_ms)``, ``ts_ms`` being its generator's clock when the event is emitted
(its un-jittered event time). Live streams yield ``(key, record, topic)``: Kafka stamps them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flinkpulse.topics import VERSIONED
from producers.base import TimeConfig, TimedEvent

DOMAINS = ("gaming", "iot", "web")

#: domain -> logical topics it writes
DOMAIN_TOPICS: dict[str, tuple[str, ...]] = {
    "gaming": ("gaming.player-events", "gaming.players"),
    "iot": ("iot.sensor-readings", "iot.security-events", "iot.devices"),
    "web": ("web.access-logs",),
}

#: the on/off switch of each domain's injected anomalies
ANOMALY_FLAGS = {"gaming": "cheaters", "iot": "intrusions", "web": "attacks"}


def domains(name: str) -> list[str]:
    if name == "all":
        return list(DOMAINS)
    if name not in DOMAINS:
        raise ValueError(f"unknown domain {name!r} (choose from {', '.join(DOMAINS)}, all)")
    return [name]


def topics(name: str) -> list[str]:
    """Every topic `name` writes: its events' and its reference tables' (topics.VERSIONED)."""
    return [t for d in domains(name) for t in DOMAIN_TOPICS[d]]


def event_topics(name: str) -> list[str]:
    """The topics of `name`'s events: `stream` writes these, `reference` the others."""
    return [t for t in topics(name) if t not in VERSIONED]


def stream(
    name: str,
    seed: int,
    time: TimeConfig,
    anomalies: bool | dict[str, bool] = True,
    options: dict[str, dict[str, Any]] | None = None,
    *,
    timed: bool | None = None,
) -> Iterator[Any]:
    """The seeded event stream of a domain or of all three (round robin, each at rate / 3):
    Events, or TimedEvents when `timed` (None: on a simulated clock only; see the module
    docstring). On a live clock, timed events carry the clock's reading of the wall clock."""
    from producers import gaming, iot, web

    gens: dict[str, Any] = {
        "gaming": gaming.GamingGenerator,
        "iot": iot.IotGenerator,
        "web": web.WebGenerator,
    }
    picked = domains(name)
    share = TimeConfig(
        **{**time.__dict__, "events_per_second": time.events_per_second / len(picked)}
    )
    streams: list[Iterator[Any]] = []
    for i, d in enumerate(picked):
        on = anomalies if isinstance(anomalies, bool) else anomalies.get(d, True)
        opts = {ANOMALY_FLAGS[d]: on, **(options or {}).get(d, {})}
        gen = gens[d](seed=seed + i, time=share, **opts)
        streams.append(
            _timed(gen) if (time.is_simulated if timed is None else timed) else iter(gen)
        )
    if len(streams) == 1:
        return streams[0]
    return _round_robin(streams)


def reference(
    name: str,
    seed: int,
    time: TimeConfig,
    anomalies: bool | dict[str, bool] = True,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[TimedEvent]:
    """The reference records of the generators `stream` (same arguments) runs, as of their start:
    (key, record, topic, Kafka timestamp). Written before the first event, so every event finds
    its device (iot.devices) or player (gaming.players) in the jobs' versioned tables."""
    from producers import gaming, iot

    picked = domains(name)
    share = TimeConfig(
        **{**time.__dict__, "events_per_second": time.events_per_second / len(picked)}
    )
    out: list[TimedEvent] = []
    for i, d in enumerate(picked):
        on = anomalies if isinstance(anomalies, bool) else anomalies.get(d, True)
        opts = {ANOMALY_FLAGS[d]: on, **(options or {}).get(d, {})}
        if d == "iot":
            out += iot.IotGenerator(seed=seed + i, time=share, **opts).reference()
        elif d == "gaming":
            out += gaming.GamingGenerator(seed=seed + i, time=share, **opts).reference()
    return out


def _timed(gen: Any) -> Iterator[TimedEvent]:
    """`gen`'s events with its simulated clock at emission: their Kafka timestamps."""
    clock = gen.clock
    for key, record, topic in gen:
        yield key, record, topic, int(clock.now)


def _round_robin(streams: list[Iterator[Any]]) -> Iterator[Any]:
    while True:
        for s in streams:
            yield next(s)
