"""Issue 17: the profile summary of `flinkpulse bench` from the tools' text output (JFR's `print`,
py-spy's raw format) and its Markdown table; fixed inputs, exact shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flinkpulse.bench.profile import (
    ASYNC_SNAPSHOT,
    CHAINED_COPY,
    KAFKA_PRODUCER,
    OTHER,
    component_of,
    jfr_summary,
    parse_jfr,
    parse_pyspy,
    pyspy_summary,
    text_lines,
)
from flinkpulse.bench.report import goals, profile_markdown
from flinkpulse.bench.runner import ALL_SECTIONS, quick_profile


def _event(thread: str, frames: list[str]) -> str:
    body = "\n".join(f"    {f}" for f in frames)
    return (
        "jdk.ExecutionSample {\n  startTime = 06:14:41.460\n"
        f'  sampledThread = "{thread}" (javaThreadId = 95)\n  state = "STATE_RUNNABLE"\n'
        f"  stackTrace = [\n{body}\n  ]\n}}\n\n"
    )


#: six samples in `jfr print --events jdk.ExecutionSample` form, one per rule
JFR_TEXT = "".join(
    [
        _event(
            "Source: gaming (1/1)#0",
            [
                "org.apache.kafka.clients.consumer.internals.Fetcher.fetch() line: 10",
                "org.apache.flink.streaming.runtime.tasks.StreamTask.run() line: 2",
            ],
        ),
        _event(
            "kafka-producer-network-thread | producer-bench.player_stats-0-3",
            ["sun.nio.ch.EPoll.wait(int, long, int, int)"],
        ),
        _event(
            "AsyncOperations-thread-3",
            [
                "java.io.DataOutputStream.write(byte[], int, int) line: 5",
                "org.apache.flink.runtime.state.heap.CopyOnWriteStateTableSnapshot"
                ".writeStateInKeyGroup(DataOutputView, int)",
                "org.apache.flink.streaming.runtime.tasks.AsyncCheckpointRunnable.run()",
                "...",
            ],
        ),
        _event(
            "GlobalWindowAggregate -> Calc (1/1)#0",
            [
                "org.apache.flink.api.common.typeutils.base.StringSerializer.copy(Object)",
                "org.apache.flink.table.runtime.typeutils.RowDataSerializer.copy(RowData)",
                "org.apache.flink.streaming.runtime.tasks.CopyingChainingOutput"
                ".pushToOperator(StreamRecord) line: 7",
            ],
        ),
        _event(
            "GlobalWindowAggregate -> Calc (1/1)#0",
            [
                "org.apache.flink.table.runtime.operators.window.tvf.slicing.SlicingWindowOperator"
                ".processElement(StreamRecord) line: 3",
                "org.apache.flink.streaming.runtime.tasks.StreamTask.run() line: 2",
            ],
        ),
        _event("main", ["java.lang.Thread.sleep(long)"]),
    ]
)


def test_jfr_print_output_parses_into_threads_and_leaf_first_frames() -> None:
    samples = parse_jfr("jdk.ActiveSetting {\n  id = 1\n}\n\n" + JFR_TEXT)
    assert len(samples) == 6
    assert samples[0] == (
        "Source: gaming (1/1)#0",
        [
            "org.apache.kafka.clients.consumer.internals.Fetcher.fetch()",
            "org.apache.flink.streaming.runtime.tasks.StreamTask.run()",
        ],
    )
    assert samples[2][1][-1] == (
        "org.apache.flink.streaming.runtime.tasks.AsyncCheckpointRunnable.run()"
    )  # the truncated stack's "..." is dropped
    assert [component_of(t, f) for t, f in samples] == [
        "kafka consumer fetch (source)",
        KAFKA_PRODUCER,
        ASYNC_SNAPSHOT,
        CHAINED_COPY,
        "window / aggregate operator",
        OTHER,
    ]


def test_jfr_summary_gives_exact_shares_of_threads_components_and_leaves() -> None:
    s = jfr_summary(parse_jfr(JFR_TEXT))
    assert s["samples"] == 6
    assert [(t["name"], t["samples"], t["share"]) for t in s["threads"]] == [
        ("GlobalWindowAggregate -> Calc", 2, 0.3333),
        ("AsyncOperations-thread-N", 1, 0.1667),
        ("Source: gaming", 1, 0.1667),
        ("kafka-producer-network-thread", 1, 0.1667),
        ("main", 1, 0.1667),
    ]
    assert {c["name"]: c["share"] for c in s["components"]} == {
        "kafka consumer fetch (source)": 0.1667,
        KAFKA_PRODUCER: 0.1667,
        ASYNC_SNAPSHOT: 0.1667,
        CHAINED_COPY: 0.1667,
        "window / aggregate operator": 0.1667,
        OTHER: 0.1667,
    }
    assert s["leaf_frames"][0] == {
        "name": "java.io.DataOutputStream.write(byte[], int, int)",
        "samples": 1,
        "share": 0.1667,
    }


def test_an_async_snapshot_wins_over_the_frames_nearer_the_leaf() -> None:
    frames = [
        "org.apache.kafka.clients.producer.KafkaProducer.send(ProducerRecord)",
        "org.apache.flink.streaming.runtime.tasks.AsyncCheckpointRunnable.run()",
    ]
    assert component_of("AsyncOperations-thread-1", frames) == ASYNC_SNAPSHOT
    assert component_of("Sink (1/1)#0", frames[:1]) == KAFKA_PRODUCER
    assert component_of("x", []) == OTHER


#: `py-spy record --format raw`: root first, the count last; a recursive function
PYSPY_TEXT = """\
<module> (/w/busy.py:9);outer (/w/busy.py:7);inner (/w/busy.py:3) 1
<module> (/w/busy.py:9);outer (/w/busy.py:8) 2
<module> (/w/busy.py:9);outer (/w/busy.py:8);inner (/w/busy.py:2) 1
<module> (/w/busy.py:9);outer (/w/busy.py:8);inner (/w/busy.py:3) 4
rec (/lib/a.py:1);rec (/lib/a.py:1) 2
Thread.run (/py/threading.py:975);Condition.wait (/py/threading.py:320) 5

"""


def test_pyspy_raw_output_gives_exact_self_and_inclusive_shares() -> None:
    stacks = parse_pyspy(PYSPY_TEXT)
    assert stacks[0] == (["<module> (busy.py)", "outer (busy.py)", "inner (busy.py)"], 1)
    s = pyspy_summary(stacks)
    assert s["samples"] == 15
    assert s["waiting"] == round(5 / 15, 4)
    assert [(f["name"], f["samples"], f["share"]) for f in s["self"]] == [
        ("inner (busy.py)", 6, 0.4),
        ("Condition.wait (threading.py)", 5, 0.3333),
        ("outer (busy.py)", 2, 0.1333),
        ("rec (a.py)", 2, 0.1333),
    ]
    assert [(f["name"], f["share"]) for f in s["busy_self"]] == [
        ("inner (busy.py)", 0.6),
        ("outer (busy.py)", 0.2),
        ("rec (a.py)", 0.2),
    ]
    assert [(f["name"], f["samples"]) for f in s["inclusive"]] == [
        ("<module> (busy.py)", 8),
        ("outer (busy.py)", 8),
        ("inner (busy.py)", 6),
        ("Condition.wait (threading.py)", 5),
        ("Thread.run (threading.py)", 5),
        ("rec (a.py)", 2),  # once per sample, however deep the recursion
    ]


def _run(job: str, variant: str, python: dict[str, Any]) -> dict[str, Any]:
    return {
        "job": job,
        "variant": variant,
        "seconds": 20,
        "read_at_start": 120_000,
        "profiled_events_per_s": 9_500,
        "python_workers": 1,
        "jvm": jfr_summary(parse_jfr(JFR_TEXT)),
        "python": python,
    }


SECTION: dict[str, Any] = {
    "seconds": 20,
    "warmup_events": 100_000,
    "pyspy_rate_hz": 50,
    "raw_dir": "/s/bench-profile/bench1",
    "missing_tools": {},
    "runs": [
        _run("player_stats", "udf", pyspy_summary(parse_pyspy(PYSPY_TEXT))),
        _run("player_stats", "twin", {"skipped": "no Python workers (the twin runs no Python)"}),
        {"job": "web_traffic", "variant": "udf", "error": "FlinkpulseError: no slot"},
    ],
}


def test_the_markdown_has_a_component_column_per_run_and_the_hottest_of_each() -> None:
    lines = profile_markdown(SECTION)
    table = lines[lines.index("| TaskManager component | player_stats udf | player_stats twin |") :]
    assert table[1:10] == [
        "|---|---:|---:|",
        "| JVM / other | 16.7 % | 16.7 % |",
        f"| {ASYNC_SNAPSHOT} | 16.7 % | 16.7 % |",
        f"| {CHAINED_COPY} | 16.7 % | 16.7 % |",
        "| kafka consumer fetch (source) | 16.7 % | 16.7 % |",
        f"| {KAFKA_PRODUCER} | 16.7 % | 16.7 % |",
        "| window / aggregate operator | 16.7 % | 16.7 % |",
        "| JFR samples | 6 | 6 |",
        "| events/s while profiled | 9,500 | 9,500 |",
    ]
    assert (
        "| player_stats udf | GlobalWindowAggregate -> Calc 33.3 %; AsyncOperations-thread-N "
        "16.7 %; Source: gaming 16.7 % | waiting 33.3 %; of the rest: inner (busy.py) 60.0 %; "
        "outer (busy.py) 20.0 %; rec (a.py) 20.0 % | 15 |" in lines
    )
    assert lines[-3].endswith("| no Python workers (the twin runs no Python) | — |")
    assert lines[-2:] == ["", "- web_traffic udf: FlinkpulseError: no slot"]
    assert profile_markdown({"skipped": "full run only"}) == ["*Skipped*: full run only"]


def test_the_printed_summary_names_what_was_not_recorded() -> None:
    lines = text_lines(SECTION["runs"][1])
    assert lines[0] == (
        "player_stats twin: 20 s profiled after 120,000 records read, 9,500 events/s during "
        "the profile"
    )
    assert "   33.3%  GlobalWindowAggregate -> Calc" in lines
    assert lines[-1] == "py-spy: no Python workers (the twin runs no Python)"


def test_profile_is_a_section_of_the_full_run_only() -> None:
    assert ALL_SECTIONS.index("profile") == ALL_SECTIONS.index("jobs") + 1
    assert "profile" in quick_profile().skip


def test_the_job_goal_is_judged_at_steady_state_when_measured() -> None:
    rows = [
        {"job": "player_stats", "variant": "udf", "vs_twin": 0.4, "steady_vs_twin": 0.55},
        {"job": "web_traffic", "variant": "udf", "vs_twin": 0.6},
    ]
    res = {"producers": {}, "jobs": {"rows": rows}, "loader": {}, "e2e": {}}
    g = goals(res)[1]
    assert g["measured"] == "player_stats 0.55 steady (0.40 whole run), web_traffic 0.60 whole run"
    assert g["met"] is True


def test_a_second_run_of_the_day_gets_its_own_name_and_sorts_after_the_first(
    tmp_path: Path,
) -> None:
    """`flinkpulse bench` twice on one day: the first result is kept, and sorting the names
    still gives the newest run last (flinkpulse.report.perf.newest_bench goes by start time)."""
    import datetime as dt

    from flinkpulse.bench.runner import result_stem

    at = dt.datetime(2026, 12, 1, 14, 26, tzinfo=dt.UTC)
    assert result_stem(at, "vm.local", False, tmp_path) == "2026-12-01-vm"
    assert result_stem(at, "vm", True, tmp_path) == "2026-12-01-vm-quick"
    (tmp_path / "2026-12-01-vm.json").write_text("{}")
    second = result_stem(at, "vm", False, tmp_path)
    assert second == "2026-12-01T1426-vm"
    assert sorted(["2026-12-01-vm.json", f"{second}.json"])[-1] == f"{second}.json"
    assert result_stem(at, "vm", True, tmp_path) == "2026-12-01-vm-quick"


def test_the_whole_pipeline_steps_and_goal() -> None:
    """Issue 17: the four jobs + loader's steps in the Markdown, each with its last lag per
    consumer, and the 50k goal judged by the highest step that held."""
    from flinkpulse.bench.report import pipeline_markdown

    pl = {
        "jobs": ["player_stats", "device_stats"],
        "step_s": 120,
        "steps": [
            {"target": 5000.0, "achieved": 4998, "lag_growing": False, "sustained": True,
             "lag_last": {"player_stats": 12, "loader": 0}},
            {"target": 10000.0, "achieved": 9990, "lag_growing": True, "sustained": False,
             "lag_last": {"player_stats": 81234, "loader": 5},
             "cpu": {"wall_s": 60.0, "total": 1.47, "roles": {"taskmanager": 1.03, "kafka": 0.09,
                                                               "registry": 0.0},
                     "taskmanager_threads": {"gc": 0.72, "jit": 0.02}}},
        ],
        "max_sustained_rate": 5000.0,
    }  # fmt: skip
    lines = pipeline_markdown(pl)
    assert "| 5,000 | 4,998 | False | True | player_stats 12, loader 0 | — |" in lines
    # a step's CPU (flinkpulse/bench/cpu.py): roles under 0.05 of a core are left out
    assert (
        "| 10,000 | 9,990 | True | False | player_stats 81,234, loader 5 | 1.47: taskmanager "
        "1.03, kafka 0.09 (TaskManager: gc 0.72) |" in lines
    )
    assert lines[-1] == "Highest sustained: 5,000 events/s."
    res = {"producers": {}, "jobs": {}, "loader": {}, "e2e": {"pipeline": pl}}
    g = goals(res)[-1]
    assert (g["measured"], g["met"]) == ("5,000 events/s", False)
    none_held = {**pl, "max_sustained_rate": None}
    assert goals({**res, "e2e": {"pipeline": none_held}})[-1]["met"] is False
    assert goals({**res, "e2e": {}})[-1]["met"] is None
    assert pipeline_markdown(None) == []
