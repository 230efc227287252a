"""Superset dashboards as code, checked on data from the real pipeline and in a real browser.

Runs on the session's `flinkpulse demo` (tests/demo_run.py, superset_data.py): Kafka -> the four Flink jobs
-> loader -> ClickHouse, on the default topics and database the bundle points at, until every
table holds rows of this run. Imports the bundle twice, then: every chart has data through the
chart-data API, every dashboard renders in Debian's headless Chromium without a chart error and
with data (PNG screenshots in test-artifacts/), the datasets' columns are ClickHouse's, time
filters select exactly the rows inside the range, the read-only ClickHouse user cannot write,
and Superset has no default credentials.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from flinkpulse import demo
from flinkpulse.clickhouse import credentials
from flinkpulse.commands import dashboards as cmd
from flinkpulse.config import Config
from flinkpulse.errors import FlinkpulseError
from flinkpulse.paths import ROOT
from flinkpulse.stack.superset import Superset
from flinkpulse.superset import bundle, definitions
from flinkpulse.superset.client import SupersetClient
from tests.e2e import superset_data

pytestmark = [pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def stack_cfg(ensure_stack: Any) -> Config:
    cfg: Config = ensure_stack("kafka", "registry", "clickhouse", "flink", "loader", "superset")
    assert not cfg.kafka.topic_prefix, "the bundle reads the default topics' tables"
    superset_data.prepare(cfg)
    return cfg


@pytest.fixture(scope="module")
def pipeline(demo_run: superset_data.Run) -> superset_data.Run:
    """Live data from the session's `flinkpulse demo` (tests/demo_run.py: run whole, as `make
    demo` does, on this session's stack) through the four jobs and the loader into ClickHouse,
    every table with rows of the run, every rule fired."""
    return demo_run


def test_demo_prints_its_summary_with_every_rule(pipeline: superset_data.Run) -> None:
    """`flinkpulse demo` as a whole: every step ran, every table had rows, and its summary shows
    every alert rule with at least one incident and where to look."""
    out = pipeline.demo_output
    steps = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert [s.split("]")[0] + "]" for s in steps] == [f"[{i}/7]" for i in range(1, 8)], steps
    after = out.split("Alerts by rule:\n", 1)[1].splitlines()
    block = list(itertools.takewhile(lambda ln: ln.startswith("  "), after))
    counts = dict(ln.split() for ln in block)
    assert set(counts) >= set(demo.RULES) and all(int(n) >= 1 for n in counts.values()), counts
    assert "Done in" in out and "Superset     http://" in out and "flinkpulse alerts tail" in out
    # ranked as the K/D chart ranks them (the view player_stats_fair): 5 players, best first
    after = out.split("Top players by K/D (latest full window; flagged cheaters left out", 1)[1]
    top = list(itertools.takewhile(lambda ln: ln.startswith("  "), after.splitlines()[1:]))
    kd = [float(ln.rsplit("K/D", 1)[1]) for ln in top]
    assert len(top) == 5 and kd == sorted(kd, reverse=True), top


@pytest.fixture(scope="module")
def superset(stack_cfg: Config) -> SupersetClient:
    """Superset with the bundle imported twice (the second import must change nothing)."""
    cmd.import_bundle(stack_cfg)
    cmd.import_bundle(stack_cfg)
    return cmd.client(stack_cfg)


def _ours(c: SupersetClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(dashboards, charts) of the bundle, as Superset lists them (matched by UUID)."""
    docs = bundle.read()
    dash_uuids = {d["uuid"] for r, d in docs.items() if r.startswith("dashboards/")}
    chart_uuids = {d["uuid"] for r, d in docs.items() if r.startswith("charts/")}
    dashes = [d for d in c.objects("dashboard", ["id", "uuid", "slug", "dashboard_title"])]
    charts = [ch for ch in c.objects("chart", ["id", "uuid", "slice_name"])]
    return (
        [d for d in dashes if d["uuid"] in dash_uuids],
        [ch for ch in charts if ch["uuid"] in chart_uuids],
    )


def test_import_twice_keeps_four_dashboards_and_no_duplicates(
    stack_cfg: Config, superset: SupersetClient
) -> None:
    cmd.import_bundle(stack_cfg)  # a third time, for good measure
    docs = bundle.read()
    dashes, charts = _ours(superset)
    assert sorted(d["dashboard_title"] for d in dashes) == [
        "Gaming",
        "Security",
        "Smart home",
        "Web traffic",
    ]
    n_charts = sum(1 for r in docs if r.startswith("charts/"))
    assert len(charts) == n_charts == 18
    all_charts = superset.objects("chart", ["uuid", "slice_name"])
    assert len({c["uuid"] for c in all_charts}) == len(all_charts)
    names = [c["slice_name"] for c in charts]
    assert len(set(names)) == len(names)
    datasets = superset.objects("dataset", ["uuid", "table_name"])
    ours = {d["uuid"] for r, d in docs.items() if r.startswith("datasets/")}
    mine = [d for d in datasets if d["uuid"] in ours]
    assert len(mine) == len(ours) == 14
    assert len({d["table_name"] for d in datasets}) == len(datasets)
    dbs = superset.objects("database", ["database_name"])
    assert [d["database_name"] for d in dbs].count(definitions.DATABASE_NAME) == 1


def test_datasets_have_clickhouse_s_columns_and_types(stack_cfg: Config) -> None:
    """The bundle's dataset columns exist in the migrated schema with exactly those types
    (tables and views by DESCRIBE TABLE, virtual datasets by DESCRIBE of their SELECT)."""
    reader = superset_data.ch_client(stack_cfg, "reader")
    wrong = {}
    docs = bundle.read()
    datasets = [d for r, d in docs.items() if r.startswith("datasets/")]
    for ds in datasets:
        what = f"({ds['sql']})" if ds.get("sql") else f"TABLE {ds['table_name']}"
        actual = {r[0]: r[1] for r in reader.query(f"DESCRIBE {what}").result_rows}
        diff = {
            c["column_name"]: (c["type"], actual.get(c["column_name"]))
            for c in ds["columns"]
            if actual.get(c["column_name"]) != c["type"]
        }
        if diff:
            wrong[ds["table_name"]] = diff
    assert not wrong, wrong
    assert len(datasets) == 14


def test_dashboards_auto_refresh_every_10s(superset: SupersetClient) -> None:
    dashes, _ = _ours(superset)
    for d in dashes:
        meta = json.loads(superset.get(f"/api/v1/dashboard/{d['id']}")["result"]["json_metadata"])
        assert meta["refresh_frequency"] == 10, d["dashboard_title"]


def test_every_chart_has_data_through_the_chart_data_api(
    superset: SupersetClient, pipeline: superset_data.Run
) -> None:
    _, charts = _ours(superset)
    docs = {d["slice_name"]: d for r, d in bundle.read().items() if r.startswith("charts/")}
    empty, capped = {}, {}
    for ch in charts:
        res = superset.chart_data(ch["id"])["result"][0]
        assert not res.get("error"), (ch["slice_name"], res.get("error"))
        if not res["data"]:
            empty[ch["slice_name"]] = res.get("query")
        params = docs[ch["slice_name"]]["params"]
        # Superset shows "row limit reached" when the rows returned reach the limit
        if params["viz_type"] == "table" and len(res["data"]) >= params["row_limit"]:
            capped[ch["slice_name"]] = (len(res["data"]), params["row_limit"])
    assert not empty, f"charts without rows: {sorted(empty)}"
    assert not capped, f"table charts at their row limit: {capped}"


def test_data_quality_chart_shows_clickhouse_s_newest_sample(
    stack_cfg: Config, superset: SupersetClient, pipeline: superset_data.Run
) -> None:
    """Issue 14 item 6: the panel's numbers are the newest sample per source topic."""
    _, charts = _ours(superset)
    (ch,) = [c for c in charts if c["slice_name"] == "Data quality per source topic"]
    # the quality process may sample between the two reads: retry until they agree
    for _ in range(5):
        data = superset.chart_data(ch["id"])["result"][0]["data"]
        got = {r["topic"]: (r["records"], r["late %"], r["dead-lettered %"], r["future %"])
               for r in data}  # fmt: skip
        rows = (
            superset_data.ch_client(stack_cfg, "reader")
            .query(
                "SELECT topic, records, late_pct, dead_lettered_pct, future_pct "
                "FROM source_quality_latest"
            )
            .result_rows
        )
        if got == {r[0]: tuple(r[1:]) for r in rows}:
            break
    assert got == {r[0]: tuple(r[1:]) for r in rows}
    assert set(got) >= {"gaming.player-events", "web.access-logs", "iot.sensor-readings"}
    assert all(records > 0 for records, *_ in got.values())


def test_time_filter_returns_exactly_the_rows_inside_the_range(
    stack_cfg: Config, superset: SupersetClient, prefix: str
) -> None:
    """DateTime64(3, 'UTC') in ClickHouse, naive UTC in Superset: no shift at the edges."""
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    path = f"/e2e/{prefix}"
    with superset_data.probe(stack_cfg, path, t0):
        _check_time_filters(superset, t0, path)


def _check_time_filters(superset: SupersetClient, t0: datetime, path: str) -> None:
    ds = [
        d
        for d in superset.objects("dataset", ["id", "table_name"])
        if d["table_name"] == "web_traffic"
    ]
    ds_id = ds[0]["id"]

    def query(time_range: str, grain: str | None = None) -> list[dict[str, Any]]:
        axis: dict[str, Any] = {
            "columnType": "BASE_AXIS",
            "sqlExpression": "window_end",
            "label": "window_end",
            "expressionType": "SQL",
        }
        if grain:
            axis["timeGrain"] = grain
        q = {
            "datasource": {"id": ds_id, "type": "table"},
            "queries": [
                {
                    "columns": [axis],
                    "metrics": [
                        {
                            "expressionType": "SQL",
                            "sqlExpression": "sum(requests)",
                            "label": "requests",
                        }
                    ],  # fmt: skip
                    "filters": [
                        {"col": "window_end", "op": "TEMPORAL_RANGE", "val": time_range},
                        {"col": "path", "op": "==", "val": path},
                    ],
                    "extras": {"time_grain_sqla": grain} if grain else {},
                    "orderby": [["window_end", True]],
                    "row_limit": 1000,
                }
            ],
            "result_format": "json",
            "result_type": "full",
        }
        return superset.post("/api/v1/chart/data", q)["result"][0]["data"]  # type: ignore[no-any-return]

    # [00:00:30, 00:01:20): windows ending at :30 :40 :50 1:00 1:10 — start inclusive, end not
    data = query("2020-01-01T00:00:30 : 2020-01-01T00:01:20")
    ms = int(t0.timestamp() * 1000)
    assert [r["window_end"] for r in data] == [ms + s * 1000 for s in (30, 40, 50, 60, 70)]
    assert [r["requests"] for r in data] == [4, 5, 6, 7, 8]
    # a day grain puts every row on 2020-01-01 00:00 UTC, not on a shifted local midnight
    day = query("2019-12-31T00:00:00 : 2020-01-02T00:00:00", grain="P1D")
    assert day == [{"window_end": ms, "requests": sum(range(1, 13))}]


def test_readonly_clickhouse_user_cannot_write(
    stack_cfg: Config, pipeline: superset_data.Run
) -> None:
    db = stack_cfg.clickhouse.database
    reader = superset_data.ch_client(stack_cfg, "reader")
    assert reader.query(f"SELECT count() FROM {db}.player_stats").result_rows[0][0] > 0
    for stmt in (
        f"INSERT INTO {db}.player_stats (player_id) VALUES ('intruder')",
        f"CREATE TABLE {db}.ro_probe (x UInt8) ENGINE = MergeTree ORDER BY x",
        f"ALTER TABLE {db}.player_stats DELETE WHERE 1",
        f"TRUNCATE TABLE {db}.player_stats",
        f"DROP TABLE {db}.player_stats",
    ):
        with pytest.raises(Exception) as e:
            reader.command(stmt)
        assert "readonly" in str(e.value).lower() or "READONLY" in str(e.value), stmt
    writer = superset_data.ch_client(stack_cfg, "writer")
    n = writer.query(
        f"SELECT count() FROM {db}.player_stats WHERE player_id = 'intruder'"
    ).result_rows[0][0]
    assert n == 0
    assert writer.query(f"EXISTS TABLE {db}.ro_probe").result_rows[0][0] == 0


def test_superset_has_no_default_credentials(stack_cfg: Config, superset: SupersetClient) -> None:
    comp = Superset(stack_cfg)
    pf = comp.password_file
    assert stat.S_IMODE(pf.stat().st_mode) == 0o600
    assert stat.S_IMODE(comp.secret_key_file.stat().st_mode) == 0o600
    password = pf.read_text().strip()
    assert len(password) >= 16
    for guess in ("admin", "password", "superset", "general"):
        with pytest.raises(FlinkpulseError, match="rejected the login"):
            SupersetClient(superset.url, "admin", guess)
    SupersetClient(superset.url, "admin", password)  # the generated one works
    # and no password is in the bundle or the generated config
    for f in (ROOT / "deploy" / "superset").rglob("*.yaml"):
        text = f.read_text()
        assert password not in text
        assert credentials(stack_cfg, "reader")[1] not in text
    assert password not in comp.config_file.read_text()


def test_export_writes_the_bundle_back_without_passwords(
    stack_cfg: Config, superset: SupersetClient, tmp_path: Path
) -> None:
    files = cmd.export_bundle(stack_cfg, tmp_path)
    exported = bundle.read(tmp_path)
    assert set(files) == set(exported)
    committed = bundle.read()
    for kind in ("dashboards", "charts", "datasets", "databases"):
        uuids = {str(d["uuid"]) for r, d in committed.items() if r.startswith(kind + "/")}
        got = {str(d["uuid"]) for r, d in exported.items() if r.startswith(kind + "/")}
        assert uuids <= got, kind
    reader_pw = credentials(stack_cfg, "reader")[1]
    for f in tmp_path.rglob("*.yaml"):
        assert reader_pw not in f.read_text()
    db = next(d for r, d in exported.items() if r.startswith("databases/"))
    assert f":{definitions.MASKED}@" in db["sqlalchemy_uri"]
    # the exported bundle imports again (what a committed UI edit goes through)
    data, passwords = cmd.prepare_import(stack_cfg, exported)
    superset.import_assets(data, passwords)
    dashes, charts = _ours(superset)
    assert len(dashes) == 4 and len(charts) == 18
    assert yaml.safe_load((tmp_path / "metadata.yaml").read_text())["version"] == "1.0.0"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt)")
def test_dashboards_render_with_data_in_chromium(
    stack_cfg: Config, superset: SupersetClient, pipeline: superset_data.Run
) -> None:
    from playwright.sync_api import sync_playwright

    user, password = cmd.superset_login(stack_cfg)
    dashes, charts = _ours(superset)
    per_dash = {
        d["dashboard_title"]: len(
            [ch for ch in charts if ch["uuid"] in _chart_uuids_of(str(d["uuid"]))]
        )
        for d in dashes
    }
    ARTIFACTS.mkdir(exist_ok=True)
    problems: dict[str, list[str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            _log_in(page, superset.url, user, password)
            for d in sorted(dashes, key=lambda x: x["dashboard_title"]):
                title = d["dashboard_title"]
                page.goto(f"{superset.url}/superset/dashboard/{d['slug']}/")
                expected = per_dash[title]
                # every chart holder present, then every chart finished loading
                page.wait_for_function(
                    "n => document.querySelectorAll('.dashboard-component-chart-holder').length >= n",
                    arg=expected,
                    timeout=60_000,
                )
                page.wait_for_function(
                    """() => {
                        const holders = [...document.querySelectorAll('.dashboard-component-chart-holder')];
                        return holders.every(h => !h.querySelector('.loading, [data-test="loading-indicator"]')
                          && (h.querySelector('canvas, svg, table tbody tr') || h.querySelector('.alert, [role="alert"]')
                              || /No results|error/i.test(h.innerText)));
                    }""",
                    timeout=90_000,
                )
                page.wait_for_timeout(1500)  # let echarts finish its animation for the PNG
                found = page.evaluate(
                    """() => [...document.querySelectorAll('.dashboard-component-chart-holder')].map(h => ({
                        title: (h.querySelector('[data-test="editable-title"], .header-title, [data-test="slice-header"]') || h).innerText.split('\\n')[0],
                        error: !!h.querySelector('.alert-danger, [data-test="alert"], [role="alert"]')
                               || /Unexpected error|An error occurred|Error:/.test(h.innerText),
                        empty: /No results were returned|No data/i.test(h.innerText),
                        drawn: !!h.querySelector('canvas, svg') || h.querySelectorAll('table tbody tr').length > 0,
                      }))"""
                )
                shot = ARTIFACTS / f"superset-{d['slug']}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                bad = [
                    f"{c['title']}: {'error' if c['error'] else 'no data' if c['empty'] else 'not drawn'}"
                    for c in found
                    if c["error"] or c["empty"] or not c["drawn"]
                ]
                if len(found) != expected:
                    bad.append(f"{len(found)} charts on the page, expected {expected}")
                if bad:
                    problems[title] = bad
        finally:
            browser.close()
    assert not problems, problems


def _log_in(page: Any, url: str, user: str, password: str, tries: int = 3) -> None:
    """Log in through the form. On a loaded machine the click can land before the React form
    is wired, or the welcome page after it takes long to load (a CI run waited 30 s for its
    `load`): so wait only for the URL to leave /login, and submit again if it did not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, tries + 1):
        page.goto(f"{url}/login/", wait_until="domcontentloaded", timeout=60_000)
        page.fill("input#username", user)
        page.fill("input#password", password)
        page.click("[data-test='login-button']")
        try:
            page.wait_for_url(lambda u: "/login" not in u, timeout=45_000, wait_until="commit")
            return
        except PlaywrightTimeout:
            if attempt == tries:
                raise


def _chart_uuids_of(dashboard_uuid: str) -> set[str]:
    for rel, doc in bundle.read().items():
        if rel.startswith("dashboards/") and str(doc["uuid"]) == dashboard_uuid:
            return {
                v["meta"]["uuid"]
                for v in doc["position"].values()
                if isinstance(v, dict) and v.get("type") == "CHART"
            }
    return set()


def test_kill9_superset_keeps_dashboards_and_exact_data(
    stack_cfg: Config, superset: SupersetClient, prefix: str, reliability: Any
) -> None:
    """Issue 8: kill -9 Superset; `stack up superset` brings back every dashboard (metadata DB
    on disk) and the chart-data API returns exactly the rows ClickHouse holds."""
    import time

    import requests

    from flinkpulse import stack

    path = f"/e2e-kill/{prefix}"
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    comp = stack.component(stack_cfg, "superset")
    with superset_data.probe(stack_cfg, path, t0):
        try:
            _check_time_filters(superset, t0, path)  # before
            comp.kill()
            with pytest.raises(requests.RequestException):
                requests.get(f"{superset.url}/health", timeout=5)
            t = time.monotonic()
            stack.up(stack_cfg, ["superset"], log=False)
            restart_s = round(time.monotonic() - t, 1)
            again = cmd.client(stack_cfg)  # old sessions may be gone: log in again
            dashes, charts = _ours(again)
            assert len(dashes) == 4 and len(charts) == 18
            _check_time_filters(again, t0, path)  # exactly the same rows, no shift, no double
        finally:
            if not comp.running():  # a failed check must not leave Superset down
                stack.up(stack_cfg, ["superset"], log=False)
    reliability(
        "fault",
        "kill -9 Superset",
        "`stack up superset` restores it (metadata DB on disk); same dashboards and exactly "
        "the same chart data",
        {"dashboards": len(dashes), "charts": len(charts), "probe rows": 12,
         "restart_s": restart_s},
        lost=0,
        duplicated=0,
    )  # fmt: skip
