"""Query tests of the Flink techniques (docs/techniques.md): deduplication before the windows,
session windows.

Scripted rows go through the jobs' own deduplication (flink_jobs/common.py `deduplicate`, the
key of flinkpulse.topics.DEDUP_KEYS) and their own .sql files in a local Flink, at parallelism
1 and 2; the expected results are computed here from the input without its copies.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from flink_jobs import web_traffic
from flinkpulse.topics import DEDUP_KEYS
from tests.query_harness import make_env, register_input, run_views
from tests.unit.test_queries import T0, al, at

pytestmark = pytest.mark.flink_local

PATHS = ["/", "/cart", "/product/1", "/search", "/login"]


def web_requests(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """`n` requests of 6 clients to 5 paths over two minutes, some failing (seeded)."""
    rnd = random.Random(seed)
    return [
        al(
            i,
            rnd.uniform(0, 119.9),
            f"10.0.0.{rnd.randint(1, 6)}",
            rnd.choice(PATHS),
            rnd.choice([200, 200, 200, 404, 500]),
        )
        for i in range(n)
    ]


def with_copies(events: list[dict[str, Any]], share: float, seed: int = 11) -> list[dict[str, Any]]:
    """`events` plus a copy of `share` of them (same event_id): half exact copies (a retried
    send), half stamped ten minutes later (a bridge that re-sends after a reconnect)."""
    rnd = random.Random(seed)
    picked = rnd.sample(events, round(share * len(events)))
    copies = []
    for j, e in enumerate(picked):
        later = j % 2 == 1
        copies.append({**e, "event_time": e["event_time"] + timedelta(minutes=10 if later else 0)})
    return events + copies


def hop_windows(t: datetime, size_s: int, slide_s: int) -> list[datetime]:
    """Starts of the HOP windows that contain `t`."""
    epoch = datetime(1970, 1, 1)
    last = epoch + timedelta(seconds=((t - epoch).total_seconds() // slide_s) * slide_s)
    return [last - timedelta(seconds=k * slide_s) for k in range(size_s // slide_s)]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_dedup_gives_the_windows_of_the_input_without_copies(
    parallelism: int, reliability: Any
) -> None:
    """``flink.dedup_state = "ttl"`` (what the default ``auto`` uses where rows reach an output
    as they arrive): an identity is remembered for the state TTL, so exact copies and copies
    re-stamped ten minutes later are both dropped."""
    events = web_requests(400)
    sent = with_copies(events, 0.10)
    t_env = make_env(parallelism)
    key = DEDUP_KEYS["web.access-logs"]
    register_input(
        t_env, "access_logs", "flinkpulse.web.AccessLog", sent, dedup=key, dedup_state="ttl"
    )
    params = {**web_traffic.DEFAULTS, "window_size_s": 20, "window_slide_s": 10}
    out = run_views(t_env, "web_traffic.sql", params, ["web_traffic", "access_logs_duplicates"])
    want: Counter[tuple[datetime, str, int]] = Counter()
    for e in events:
        for ws in hop_windows(e["event_time"], 20, 10):
            want[(ws, e["path"].replace("/1", "/{id}"), e["status"])] += 1
    got = {(r["window_start"], r["path"], r["status"]): r["requests"] for r in out["web_traffic"]}
    assert got == dict(want)
    # no window of the copies stamped ten minutes later exists
    assert max(r["window_start"] for r in out["web_traffic"]) < T0 + timedelta(minutes=2)
    assert all(r["bytes"] == 100 * r["requests"] for r in out["web_traffic"])  # 100 B each
    dups = out["access_logs_duplicates"]
    assert len(dups) == len(sent) - len(events) == 40
    assert {d["dedup_copy"] for d in dups} == {2}
    assert sorted(d["event_id"] for d in dups) == sorted(e["event_id"] for e in sent[400:])
    reliability(
        "bad input",
        "web.access-logs: 10 % sent twice, half of the copies 10 min later, "
        f"flink.dedup_state=ttl (p{parallelism})",
        "first copy into the windows, later copies dropped and counted (dup.<topic>); windows "
        "exactly those of the input without copies",
        {"produced": len(sent), "accepted": len(events), "duplicates": len(dups)},
        lost=0,
        duplicated=0,
    )


@pytest.mark.parametrize("parallelism", [1, 2])
def test_dedup_until_the_watermark_drops_exact_copies_and_keeps_re_stamped_ones(
    parallelism: int,
) -> None:
    """``flink.dedup_state = "watermark"``: an identity is remembered until the watermark passes
    its event time. Exact copies (a retried send) are dropped as with the TTL; a copy re-stamped
    ten minutes later is a new event there, in the windows of its own event time."""
    events = web_requests(400)
    sent = with_copies(events, 0.10)
    t_env = make_env(parallelism)
    key = DEDUP_KEYS["web.access-logs"]
    register_input(
        t_env, "access_logs", "flinkpulse.web.AccessLog", sent, dedup=key, dedup_state="watermark"
    )
    params = {**web_traffic.DEFAULTS, "window_size_s": 20, "window_slide_s": 10}
    out = run_views(t_env, "web_traffic.sql", params, ["web_traffic", "access_logs_duplicates"])
    exact = [c for j, c in enumerate(sent[400:]) if j % 2 == 0]
    re_stamped = [c for j, c in enumerate(sent[400:]) if j % 2 == 1]
    want: Counter[tuple[datetime, str, int]] = Counter()
    for e in events + re_stamped:
        for ws in hop_windows(e["event_time"], 20, 10):
            want[(ws, e["path"].replace("/1", "/{id}"), e["status"])] += 1
    got = {(r["window_start"], r["path"], r["status"]): r["requests"] for r in out["web_traffic"]}
    assert got == dict(want)
    dups = out["access_logs_duplicates"]
    assert len(dups) == len(exact) == 20
    assert {d["dedup_copy"] for d in dups} == {2}
    assert sorted(d["event_id"] for d in dups) == sorted(e["event_id"] for e in exact)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_sessions_of_known_click_streams(parallelism: int) -> None:
    gap = 60
    rows = [
        # ana: three pages in 25 s, then back after more than the gap for one page
        al(1, 0, "1.1.1.1", "/", user="ana"),
        al(2, 10, "1.1.1.1", "/product/17", user="ana"),
        al(3, 25, "1.1.1.1", "/cart", status=500, user="ana"),
        al(4, 25 + gap + 1, "1.1.1.1", "/product/18", user="ana"),
        # a one-page visit: a bounce
        al(5, 5.5, "2.2.2.2", "/blog"),
        # two pages 0.2 s apart across a second boundary, then 1 ms less than the gap later (same visit)
        al(6, 0.9, "3.3.3.3", "/a"),
        al(7, 1.1, "3.3.3.3", "/b"),
        al(8, 1.1 + gap - 0.001, "3.3.3.3", "/c"),
    ]
    t_env = make_env(parallelism)
    register_input(
        t_env, "access_logs", "flinkpulse.web.AccessLog", rows, dedup=DEDUP_KEYS["web.access-logs"]
    )
    params = {**web_traffic.DEFAULTS, "session_gap_s": gap}
    out = run_views(t_env, "web_traffic.sql", params, ["web_sessions"])
    got = sorted(
        (
            r["client_ip"],
            r["session_start"],
            r["session_end"],
            r["pages"],
            r["duration_s"],
            r["bounce"],
            r["entry_path"],
            r["exit_path"],
            r["errors"],
            r["user_id"],
        )
        for r in out["web_sessions"]
    )
    assert got == [
        ("1.1.1.1", at(0), at(25), 3, 25.0, False, "/", "/cart", 1, "ana"),
        ("1.1.1.1", at(86), at(86), 1, 0.0, True, "/product/{id}", "/product/{id}", 0, "ana"),
        ("2.2.2.2", at(5.5), at(5.5), 1, 0.0, True, "/blog", "/blog", 0, None),
        ("3.3.3.3", at(0.9), at(61.099), 3, 60.199, False, "/a", "/c", 0, None),
    ]
