"""The loader's ClickHouse-decodes path (flinkpulse.loader.fast) against the running stack.

Malformed records whose framing and schema id look right reach a staged batch; the staged
insert must refuse the whole batch, and the replay through the Python path must dead-letter
exactly those records and load the others exactly once.
"""

from __future__ import annotations

from flinkpulse.bench.records import PLAYER_STATS, Encoder, player_row, register
from flinkpulse.config import Config
from flinkpulse.loader.core import Loader
from flinkpulse.producer import Producer
from tests.integration.test_loader import _assert_exactly, _dlq, lcfg  # noqa: F401


def test_staged_batches_with_malformed_records_dead_letter_exactly_those(
    lcfg: Config,  # noqa: F811
) -> None:
    n = 3000
    topic = lcfg.kafka.topic("results.player-stats")
    enc = Encoder(register(lcfg.registry.url, f"{topic}-value", PLAYER_STATS), PLAYER_STATS)
    good = enc(player_row(0))
    bad = {
        500: good + b"\x00\x00",  # trailing bytes
        1500: good[:-1],  # truncated
        2500: good.replace(b"player-00000", b"player\xff00000"),  # not UTF-8
    }
    p = Producer({**lcfg.kafka.client_conf(), "linger.ms": 20})
    for i in range(n):
        row = player_row(i)
        p.produce(topic, key=b"k", value=enc(row))  # one partition: the bad ones share batches
        if i in bad:
            p.produce(topic, key=b"bad", value=bad[i])
    assert p.flush(30) == 0

    loader = Loader(lcfg, topics=["results.player-stats"])
    stats = loader.run(once=True)
    assert stats.rows == n
    assert stats.dead_letters == len(bad)
    assert any(v is not None for v in loader.router.plans.values()), "the staged path was not taken"
    assert loader.router.slow_until, "no staged batch was refused"
    _assert_exactly(lcfg, n)
    dead = _dlq(lcfg, "results.player-stats", len(bad))
    assert sorted(m.value() for m in dead) == sorted(bad.values())
    assert Loader(lcfg, topics=["results.player-stats"]).run(once=True).rows == 0
    _assert_exactly(lcfg, n)
