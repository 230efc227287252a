"""The committed Superset bundle (deploy/superset) is complete, consistent and password-free."""

from __future__ import annotations

import zipfile
from io import BytesIO

import pytest

from flinkpulse.commands.dashboards import prepare_import
from flinkpulse.config import load_config
from flinkpulse.errors import FlinkpulseError
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
