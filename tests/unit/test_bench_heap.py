"""`bench/pipeline.py --heap`: the TaskManager's live objects by class, read with `jcmd`, so a
heap that fills says with what (deduplication state, window slices, buffers)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flinkpulse.bench import heap

_SAMPLE = """\
22190:
 num     #instances         #bytes  class name (module)
-------------------------------------------------------
   1:          9507        1615552  [B (java.base@17.0.15)
   2:           960        1078040  [I (java.base@17.0.15)
   3:         20000         480000  org.apache.flink.runtime.state.ttl.TtlValue
   4:          8413         201912  java.lang.String (java.base@17.0.15)
Total         38880        3375504
"""


def test_parse_reads_rows_and_skips_the_header_and_total() -> None:
    rows = heap.parse(_SAMPLE)
    assert rows[0] == ("[B", 9507, 1615552)
    assert rows[2] == ("org.apache.flink.runtime.state.ttl.TtlValue", 20000, 480000)
    assert len(rows) == 4


def test_summary_gives_live_mb_and_bytes_per_instance() -> None:
    s = heap.summary(heap.parse(_SAMPLE), top=2)
    assert s["live_mb"] == 3.4
    assert s["top"] == [
        {"class": "[B", "instances": 9507, "mb": 1.6, "bytes_each": 170},
        {"class": "[I", "instances": 960, "mb": 1.1, "bytes_each": 1123},
    ]


_HOLD = """
public class Hold {
    static byte[][] kept = new byte[4000][];
    public static void main(String[] a) throws Exception {
        for (int i = 0; i < kept.length; i++) kept[i] = new byte[1000];
        System.out.println("ready");
        Thread.sleep(60000);
    }
}
"""


@pytest.mark.skipif(shutil.which("jcmd") is None, reason="needs a JDK's jcmd")
def test_a_real_jvms_histogram_counts_what_it_holds(tmp_path: Path) -> None:
    src = tmp_path / "Hold.java"
    src.write_text(_HOLD)
    jvm = subprocess.Popen(
        ["java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", str(src)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert jvm.stdout is not None and jvm.stdout.readline() == "ready\n"
        got = heap.histogram(jvm.pid, top=50)
    finally:
        jvm.kill()
        jvm.wait()
    assert "error" not in got, got
    arrays = next(r for r in got["top"] if r["class"] == "[B")
    # the 4,000 arrays of 1,000 bytes it keeps (each 1,016 with its header), and more
    assert arrays["instances"] >= 4000 and arrays["mb"] >= 4.0
    assert got["live_mb"] >= arrays["mb"]


def test_a_missing_process_is_an_error_entry_not_an_exception() -> None:
    got = heap.histogram(2**22 + 12345, timeout_s=30)
    assert set(got) == {"error"} and "GC.class_histogram" in got["error"]
