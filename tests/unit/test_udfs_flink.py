"""Every UDF once through Flink (local mini-cluster, one JVM for the module): exact results.

Also pins that Flink's built-in PERCENTILE keeps udfs.stats' definition in both runtime modes.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.flink_local]

pyflink_table = pytest.importorskip("pyflink.table")

from udfs import gaming, geo, stats, web  # noqa: E402
from udfs.flink import UDFS, register_all  # noqa: E402

BASE = datetime(2024, 1, 1)
SIZE_S, SLIDE_S = 60, 10


def _env(tmp: Path, batch: bool) -> Any:
    settings = (
        pyflink_table.EnvironmentSettings.in_batch_mode()
        if batch
        else pyflink_table.EnvironmentSettings.in_streaming_mode()
    )
    t_env = pyflink_table.TableEnvironment.create(settings)
    conf = t_env.get_config()
    conf.set("python.executable", sys.executable)
    conf.set("python.client.executable", sys.executable)
    conf.set("parallelism.default", "1")
    conf.set("python.fn-execution.bundle.size", "1000")
    register_all(t_env)
    t_env.execute_sql(
        f"""CREATE TEMPORARY TABLE web_requests (
              route STRING, latency_ms DOUBLE, event_time TIMESTAMP(3),
              WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND
            ) WITH ('connector' = 'filesystem', 'path' = '{tmp / "web"}', 'format' = 'csv')"""
    )
    return t_env


def _latency_samples() -> list[tuple[int, str, float]]:
    rng = random.Random(11)
    return [
        (s, p, round(rng.lognormvariate(3, 0.8), 3))
        for s in range(0, 300, 2)
        for p in ("/", "/api")
    ]


def _write_csv(path: Path, rows: list[tuple[int, str, float]]) -> None:
    """Write rows in event-time order but with local disorder (within the 30 s watermark)."""
    rows = sorted(rows)
    for i in range(0, len(rows) - 3, 5):
        rows[i], rows[i + 3] = rows[i + 3], rows[i]
    path.mkdir()
    with open(path / "data.csv", "w") as f:
        for sec, key, value in rows:
            ts = (BASE + timedelta(seconds=sec)).strftime("%Y-%m-%d %H:%M:%S")
            f.write(f"{key},{value!r},{ts}.000\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("udfs_flink")
    _write_csv(tmp / "web", _latency_samples())
    return tmp


@pytest.fixture(scope="module")
def stream_env(data_dir: Path) -> Iterator[Any]:
    yield _env(data_dir, batch=False)


@pytest.fixture(scope="module")
def batch_env(data_dir: Path) -> Iterator[Any]:
    yield _env(data_dir, batch=True)


def _rows(t_env: Any, sql: str) -> list[tuple[Any, ...]]:
    with t_env.execute_sql(sql).collect() as results:
        return [tuple(r) for r in results]


def _hop_expected(
    samples: list[tuple[int, str, float]], agg: Any
) -> dict[tuple[datetime, str], float | None]:
    """Python reference of a HOP(SLIDE_S, SIZE_S) aggregation keyed by (window_start, key)."""
    expected: dict[tuple[datetime, str], float | None] = {}
    keys = {k for _, k, _ in samples}
    first = min(s for s, _, _ in samples) // SLIDE_S * SLIDE_S - SIZE_S + SLIDE_S
    last = max(s for s, _, _ in samples)
    for start in range(first, last + 1, SLIDE_S):
        for key in keys:
            inside = [(s, v) for s, k, v in samples if k == key and start <= s < start + SIZE_S]
            if inside:
                expected[(BASE + timedelta(seconds=start), key)] = agg(inside)
    return expected


def _p95_reference(inside: list[tuple[int, float]]) -> float | None:
    return stats.percentile([v for _, v in inside], 0.95)


HOP_TVF = f"TABLE(HOP(TABLE {{table}}, DESCRIPTOR(event_time), INTERVAL '{SLIDE_S}' SECOND, INTERVAL '{SIZE_S}' SECOND))"


def test_register_all_registers_every_sql_name(stream_env: Any) -> None:
    assert set(UDFS) <= set(stream_env.list_user_defined_functions())


def test_scalar_udfs_through_flink(stream_env: Any) -> None:
    ua_iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    ua_bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    inputs = [
        (10, 4, 2, 3, 1234.5, "8.8.8.8", ua_iphone),
        (7, 0, 0, 7, 0.0, "193.0.6.139", ua_bot),
        (0, 0, 1, 0, 10.0, "10.1.2.3", ""),
        (None, 3, None, None, None, "garbage", None),
    ]
    values = ", ".join(
        "({})".format(
            ", ".join(
                f"CAST(NULL AS {t})" if v is None else (f"'{v}'" if isinstance(v, str) else repr(v))
                for v, t in zip(
                    row, ["INT", "INT", "INT", "INT", "DOUBLE", "STRING", "STRING"], strict=True
                )
            )
        )
        for row in inputs
    )
    rows = _rows(
        stream_env,
        f"""SELECT kd_ratio(k, d), player_score(k, d, a, h, dmg), ip_country(ip),
                   browser_family(ua), device_family(ua)
            FROM (VALUES {values}) AS t(k, d, a, h, dmg, ip, ua)""",
    )
    expected = [
        (
            gaming.kd_ratio(k, d),
            gaming.player_score(k, d, a, h, dmg),
            geo.ip_country(ip),
            web.browser_family(ua),
            web.device_family(ua),
        )
        for k, d, a, h, dmg, ip, ua in inputs
    ]
    assert sorted(rows, key=repr) == sorted(expected, key=repr)
    assert (2.5, "US", "Mobile Safari", "mobile") in [(r[0], r[2], r[3], r[4]) for r in rows]
    assert (7.0, "NL", "Googlebot", "bot") in [(r[0], r[2], r[3], r[4]) for r in rows]


def _p95_tvf(t_env: Any, fn: str) -> dict[tuple[datetime, str], float]:
    rows = _rows(
        t_env,
        f"""SELECT window_start, route, {fn}(latency_ms, 0.95)
            FROM {HOP_TVF.format(table="web_requests")} GROUP BY window_start, window_end, route""",
    )
    return {(ws, route): v for ws, route, v in rows}


def _assert_close(got: dict[Any, float], expected: dict[Any, float | None]) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-14, abs=0), key


@pytest.mark.parametrize("batch", [False, True], ids=["streaming", "batch"])
def test_builtin_percentile_in_hop_window_tvf(stream_env: Any, batch_env: Any, batch: bool) -> None:
    """Flink's PERCENTILE: same definition; can differ from numpy in the last bit (57.3074 vs
    57.307399999999994), so compared to 1e-14 relative."""
    _assert_close(
        _p95_tvf(batch_env if batch else stream_env, "PERCENTILE"),
        _hop_expected(_latency_samples(), _p95_reference),
    )


KNOWN_LATENCIES = """(VALUES (12.0), (15.0), (11.0), (30.0), (45.0), (10.0), (100.0), (14.0),
    (13.0), (20.0), (16.0), (18.0), (17.0), (19.0), (22.0), (25.0), (28.0), (35.0), (40.0),
    (250.0), (60.0)) AS t(ms)"""


def test_p95_of_known_latencies_through_flink(stream_env: Any) -> None:
    rows = _rows(stream_env, f"SELECT PERCENTILE(CAST(ms AS DOUBLE), 0.95) FROM {KNOWN_LATENCIES}")
    assert rows[-1] == (100.0,)


def test_builtin_percentile_mixes_with_builtins_in_both_modes(
    stream_env: Any, batch_env: Any
) -> None:
    """The web_traffic shape: COUNT, AVG, p50 and p95 in one HOP window TVF query."""
    sql = f"""SELECT window_start, route, COUNT(*), PERCENTILE(latency_ms, 0.5),
                     PERCENTILE(latency_ms, 0.95)
              FROM {HOP_TVF.format(table="web_requests")}
              WHERE route = '/' GROUP BY window_start, window_end, route"""
    streaming, batch = sorted(_rows(stream_env, sql)), sorted(_rows(batch_env, sql))
    assert streaming == batch
    assert len(streaming) == len(_hop_expected(_latency_samples(), _p95_reference)) // 2
