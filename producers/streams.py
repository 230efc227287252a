"""Pick and combine the domain generators: ``stream("all", ...)`` interleaves gaming, iot, web."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from producers.base import EventStream, TimeConfig

DOMAINS = ("gaming", "iot", "web")

#: domain -> logical topics it writes
DOMAIN_TOPICS: dict[str, tuple[str, ...]] = {
    "gaming": ("gaming.player-events",),
    "iot": ("iot.sensor-readings", "iot.security-events"),
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
    return [t for d in domains(name) for t in DOMAIN_TOPICS[d]]


def stream(
    name: str,
    seed: int,
    time: TimeConfig,
    anomalies: bool | dict[str, bool] = True,
    options: dict[str, dict[str, Any]] | None = None,
) -> EventStream:
    """The seeded event stream of a domain or of all three (round robin, each at rate / 3)."""
    from producers import gaming, iot, web

    gens = {"gaming": gaming.generate, "iot": iot.generate, "web": web.generate}
    picked = domains(name)
    share = TimeConfig(
        **{**time.__dict__, "events_per_second": time.events_per_second / len(picked)}
    )
    streams = []
    for i, d in enumerate(picked):
        on = anomalies if isinstance(anomalies, bool) else anomalies.get(d, True)
        opts = {ANOMALY_FLAGS[d]: on, **(options or {}).get(d, {})}
        streams.append(gens[d](seed=seed + i, time=share, **opts))
    if len(streams) == 1:
        return streams[0]
    return _round_robin(streams)


def _round_robin(streams: list[EventStream]) -> Iterator[Any]:
    while True:
        for s in streams:
            yield next(s)
