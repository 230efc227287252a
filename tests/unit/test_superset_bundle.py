"""The committed Superset bundle (deploy/superset) is complete, consistent and password-free."""

from __future__ import annotations

import functools
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from flinkpulse.commands.dashboards import prepare_import
from flinkpulse.config import load_config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.paths import ROOT
from flinkpulse.superset import bundle, definitions

pytestmark = pytest.mark.unit


def test_bundle_has_four_auto_refreshing_dashboards_with_resolvable_references() -> None:
    docs = bundle.read()
    assert docs["metadata.yaml"]["version"] == "1.0.0"
    dashes = {r: d for r, d in docs.items() if r.startswith("dashboards/")}
    charts = {str(d["uuid"]): d for r, d in docs.items() if r.startswith("charts/")}
    datasets = {str(d["uuid"]): d for r, d in docs.items() if r.startswith("datasets/")}
    databases = {str(d["uuid"]) for r, d in docs.items() if r.startswith("databases/")}
    assert sorted(d["dashboard_title"] for d in dashes.values()) == [
        "Gaming",
        "Security",
        "Smart home",
        "Web traffic",
    ]
    used: set[str] = set()
    for d in dashes.values():
        assert d["metadata"]["refresh_frequency"] == 10
        refs = [v["meta"]["uuid"] for v in d["position"].values() if isinstance(v, dict)
                and v.get("type") == "CHART"]  # fmt: skip
        assert refs and all(u in charts for u in refs), d["dashboard_title"]
        used.update(refs)
    assert used == set(charts)  # no orphan chart
    for c in charts.values():
        assert str(c["dataset_uuid"]) in datasets, c["slice_name"]
    for ds in datasets.values():
        assert str(ds["database_uuid"]) in databases
        assert any(col["is_dttm"] for col in ds["columns"]), ds["table_name"]


def test_uuids_are_the_fixed_ones_from_the_definitions() -> None:
    docs = bundle.read()
    dash_uuids = {str(d["uuid"]) for r, d in docs.items() if r.startswith("dashboards/")}
    assert dash_uuids == {definitions.uid("dashboard", k) for k, _, _ in definitions.DASHBOARDS}
    assert definitions.uid("chart", "x") == definitions.uid("chart", "x")


def test_bundle_carries_no_password_and_import_supplies_it() -> None:
    docs = bundle.read()
    bundle.check_no_passwords(docs)
    db_rel = next(r for r in docs if r.startswith("databases/"))
    assert f"reader:{definitions.MASKED}@" in docs[db_rel]["sqlalchemy_uri"]
    cfg = load_config(env={"CLICKHOUSE_USER": "reader", "CLICKHOUSE_PASSWORD": "s3cr3t-pw"})
    data, passwords = prepare_import(cfg, docs)
    assert passwords == {db_rel: "s3cr3t-pw"}
    with zipfile.ZipFile(BytesIO(data)) as zf:
        text = "".join(zf.read(n).decode() for n in zf.namelist())
    assert "s3cr3t-pw" not in text
    assert "type: assets" in text  # the importer that overwrites every object type
    leaked = {**docs, db_rel: {**docs[db_rel], "sqlalchemy_uri": "clickhousedb://r:pw@h:1/d"}}
    with pytest.raises(FlinkpulseError, match="contains a password"):
        bundle.check_no_passwords(leaked)


def test_export_names_and_masks_like_the_bundle() -> None:
    docs = bundle.read()
    exported = {f"some_export_123/{r}": d for r, d in docs.items()}
    renamed = bundle.canonical_names({r.split("/", 1)[1]: d for r, d in exported.items()})
    assert set(renamed) == set(docs)
    db = {"databases/x.yaml": {"database_name": "x", "sqlalchemy_uri": "clickhousedb://u:pw@h:1/d"}}
    bundle.mask_passwords(db)
    assert (
        db["databases/x.yaml"]["sqlalchemy_uri"] == f"clickhousedb://u:{definitions.MASKED}@h:1/d"
    )


def test_energy_hogs_chart_reads_the_ranking_view() -> None:
    """energy_usage has no rank column; the ranking is the view energy_hogs (003_views.sql)."""
    docs = bundle.read()
    datasets = {d["table_name"]: d for r, d in docs.items() if r.startswith("datasets/")}
    assert "hog_rank" not in {c["column_name"] for c in datasets["energy_usage"]["columns"]}
    hogs = next(d for r, d in docs.items() if r.startswith("charts/Energy_hogs"))
    assert str(hogs["dataset_uuid"]) == str(datasets["energy_hogs"]["uuid"])
    cols = {c["column_name"]: c["type"] for c in datasets["energy_hogs"]["columns"]}
    assert cols["hog_rank"] == cols["home_rank"] == "UInt16"


@functools.cache
def _docs() -> dict[str, dict[str, Any]]:
    """The committed bundle, read once (the tests below only look)."""
    return bundle.read()


def _charts() -> dict[str, dict[str, Any]]:
    """slice_name -> chart document of the committed bundle."""
    return {d["slice_name"]: d for r, d in _docs().items() if r.startswith("charts/")}


def _dashboard(title: str) -> dict[str, Any]:
    docs = _docs()
    return next(
        d for r, d in docs.items() if r.startswith("dashboards/") and d["dashboard_title"] == title
    )


def _on(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        v["meta"]["sliceName"]: v
        for v in dash["position"].values()
        if isinstance(v, dict) and v.get("type") == "CHART"
    }


def test_bundle_is_what_the_definitions_generate() -> None:
    """`dashboards generate` was run after the last change of definitions.py."""
    assert bundle.read() == {
        r: yaml.safe_load(bundle.dump(d)) for r, d in definitions.bundle_docs().items()
    }


def test_data_quality_panel_on_security_reads_the_newest_sample_per_topic() -> None:
    """Issue 14 item 6: per source topic, the share late, dead-lettered and future (and issue
    22: duplicated)."""
    docs = _docs()
    chart = _charts()["Data quality per source topic"]
    assert "Data quality per source topic" in _on(_dashboard("Security"))
    ds = next(d for r, d in docs.items() if r.startswith("datasets/")
              and str(d["uuid"]) == str(chart["dataset_uuid"]))  # fmt: skip
    assert ds["table_name"] == "source_quality_latest"
    p = chart["params"]
    assert p["viz_type"] == "table" and p["groupby"] == ["topic"]
    assert [m["label"] for m in p["metrics"]] == [
        "records",
        "late %",
        "dead-lettered %",
        "future %",
        "duplicates %",
    ]
    assert not p["adhoc_filters"]  # the newest sample, however old


def test_p95_by_path_is_not_the_max_of_the_status_groups_p95() -> None:
    """Issue 15 item 7: max(latency_p95) let a few slow 500s stand for the whole path."""
    docs = _docs()
    chart = _charts()["p95 latency by path (ms)"]
    (metric,) = chart["params"]["metrics"]
    # the job's per-path percentile over every status (path_latency), not web_traffic's groups
    ds = next(d for r, d in docs.items() if r.startswith("datasets/")
              and str(d["uuid"]) == str(chart["dataset_uuid"]))  # fmt: skip
    assert ds["table_name"] == "path_latency"
    # one home for the expression, which the report's web_paths uses too (over a period: the
    # request-weighted p95 of the windows' p95s, never their max)
    assert metric["sqlExpression"] == definitions.P95_BY_PATH
    assert definitions.P95_BY_PATH == "quantileExactWeighted(0.95)(latency_p95, toUInt64(requests))"


def test_charts_with_several_metrics_draw_each_in_its_own_colour() -> None:
    """Issue 15 item 8: Team comparison drew kills and deaths in one colour."""
    docs = _docs()
    for dash in (d for r, d in docs.items() if r.startswith("dashboards/")):
        colours = dash["metadata"]["label_colors"]
        for title in _on(dash):
            metrics = [m["label"] for m in _charts()[title]["params"].get("metrics", [])]
            if len(metrics) > 1 and _charts()[title]["params"]["viz_type"].startswith("echarts"):
                assert all(m in colours for m in metrics), (title, colours)
                assert len({colours[m].lower() for m in metrics}) == len(metrics), title


def test_kd_chart_leaves_out_the_flagged_cheaters() -> None:
    """Issue 15 item 8: the top players by K/D were only the injected cheaters."""
    docs = _docs()
    chart = _charts()["K/D ratio over time (top players)"]
    ds = next(d for r, d in docs.items() if r.startswith("datasets/")
              and str(d["uuid"]) == str(chart["dataset_uuid"]))  # fmt: skip
    # the ClickHouse view the report and the demo rank players from too (one definition)
    assert ds["table_name"] == "player_stats_fair" and ds["sql"] is None
    view = (ROOT / "sql/clickhouse/016_player_stats_fair.sql").read_text()
    assert "CREATE OR REPLACE VIEW {database}.player_stats_fair AS" in view
    assert "NOT IN (\n    SELECT entity_id FROM {database}.alert_incidents" in view
    assert "WHERE rule = 'impossible_kill_rate')" in view


def test_table_charts_do_not_reach_their_row_limit() -> None:
    """Issue 15 item 8: Superset warns "row limit reached" when the rows returned reach the
    limit; the 10-row leaderboard with a limit of 10 always did. Tables page instead."""
    for title, c in _charts().items():
        p = c["params"]
        if p["viz_type"] != "table":
            continue
        if title == "Live leaderboard":
            assert p["row_limit"] > 10  # its dataset holds the 10 rows of the latest window
        else:
            assert p["row_limit"] >= 100, title
        if p["row_limit"] >= definitions.TABLE_ROWS:
            pages = p["server_page_length"] if p["server_pagination"] else p["page_length"]
            assert 0 < pages <= 20, title
    # rows that grow with the traffic (a 20,000-IP client pool, every security event) page on
    # the server, with a limit far above what an hour holds
    for title in ("Top clients", "Security event log"):
        p = _charts()[title]["params"]
        assert p["server_pagination"] is True and p["row_limit"] >= 100_000, title


def test_every_category_axis_labels_every_bar() -> None:
    """Issue 15 item 9: every other x-axis label was missing ("auto" interval)."""
    for title, c in _charts().items():
        p = c["params"]
        if p["viz_type"].startswith("echarts") and p["x_axis"] != _dttm(c):
            assert p["xAxisLabelInterval"] == "0", title


def _dttm(chart: dict[str, Any]) -> str:
    docs = _docs()
    ds = next(d for r, d in docs.items() if r.startswith("datasets/")
              and str(d["uuid"]) == str(chart["dataset_uuid"]))  # fmt: skip
    return str(ds["main_dttm_col"])


def test_line_charts_break_at_gaps_in_the_data() -> None:
    """Issue 15 item 9: "Power over time" drew straight lines across missing windows."""
    for title, c in _charts().items():
        p = c["params"]
        if p["viz_type"] == "echarts_timeseries_line" and not p.get("time_grain_sqla"):
            assert p["resample_method"] == "asfreq", title
            assert p["resample_rule"] == definitions.SLIDE_RULE, title


def test_latest_alerts_show_one_line_per_alert_across_the_page() -> None:
    """Issue 15 item 10: summaries wrapped to 5 lines, so only ~3 alerts were visible."""
    p = _charts()["Latest alerts"]["params"]
    assert p["column_config"]["summary"]["truncateLongCells"] is True
    assert _on(_dashboard("Security"))["Latest alerts"]["meta"]["width"] == 12


def test_committed_bundle_is_what_generate_writes(tmp_path: Path) -> None:
    """`flinkpulse dashboards generate` (as docs/superset.md shows it) rewrites the bundle from
    the definitions: the committed deploy/superset must be exactly its output, so an edit of
    the definitions without regenerating (or a hand edit of the YAML) fails here."""
    res = subprocess.run(
        [sys.executable, "-m", "flinkpulse", "dashboards", "generate", "--dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    generated = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*.yaml")}
    assert res.stdout.strip() == f"wrote {len(generated)} files into {tmp_path}"
    committed = {
        p.relative_to(bundle.BUNDLE_DIR): p.read_text()
        for p in bundle.BUNDLE_DIR.rglob("*.yaml")
        if p.relative_to(bundle.BUNDLE_DIR).parts[0] in {"charts", "dashboards", "datasets",
                                                           "databases"}
        or p.name == "metadata.yaml"
    }  # fmt: skip
    assert sorted(map(str, generated)) == sorted(map(str, committed))
    assert [f for f in generated if generated[f] != committed[f]] == []
