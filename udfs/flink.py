"""Flink wrappers for the plain functions in this package, and :func:`register_all`.

Only this module imports pyflink. ``register_all(t_env)`` registers every UDF in :data:`UDFS` as a
temporary *system* function (callable from any catalog/database) under its SQL name.

Python UDAFs in Flink 2.2, measured by tests/unit/test_udfs_flink.py (local mini-cluster):

| form | streaming, window TVF ``HOP(TABLE t, ...)`` | streaming, legacy ``GROUP BY HOP(...)`` | batch (either form) |
|---|---|---|---|
| general UDAF (``AggregateFunction``) | works | works | rejected: "non-Pandas UDAFs are not supported in batch mode" |
| pandas UDAF (``func_type="pandas"``) | rejected: "Pandas UDAFs are not supported in streaming mode" | works | works |
| built-in ``PERCENTILE(v, p)`` | works | works | works |

So ``register_all`` binds the SQL name ``energy_kwh`` to the general UDAF in a streaming
environment and to the pandas UDAF in a batch one: the same window TVF SQL runs in both modes
(bounded backfills, see sql/flink/device_stats.sql). ``energy_kwh_pd`` is always the pandas form.
Percentiles are Flink's built-in ``PERCENTILE`` (same definition as udfs.stats, stays in the JVM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from pyflink.common import Row
from pyflink.table import DataTypes, TableEnvironment
from pyflink.table.udf import AggregateFunction, UserDefinedFunctionWrapper, udaf, udf

from udfs import gaming, geo, iot, web

# --- scalar UDFs ---------------------------------------------------------------------------

kd_ratio = udf(gaming.kd_ratio, result_type=DataTypes.DOUBLE())
player_score = udf(gaming.player_score, result_type=DataTypes.DOUBLE())
ip_country = udf(geo.ip_country, result_type=DataTypes.STRING())
browser_family = udf(web.browser_family, result_type=DataTypes.STRING())
device_family = udf(web.device_family, result_type=DataTypes.STRING())


# --- energy_kwh ------------------------------------------------------------------------------


class EnergyKwh(AggregateFunction):
    """``energy_kwh(power_w DOUBLE, ts TIMESTAMP(3)) -> DOUBLE``: trapezoidal kWh (udfs.iot)."""

    def create_accumulator(self) -> Row:
        return Row([], [])

    def accumulate(self, acc: Row, power_w: float | None, ts: Any) -> None:
        if power_w is None or ts is None:
            return
        acc[0].append(iot.to_epoch_ms(ts))
        acc[1].append(float(power_w))

    def retract(self, acc: Row, power_w: float | None, ts: Any) -> None:
        if power_w is None or ts is None:
            return
        sample = (iot.to_epoch_ms(ts), float(power_w))
        for i, pair in enumerate(zip(acc[0], acc[1], strict=True)):
            if pair == sample:
                del acc[0][i], acc[1][i]
                return

    def merge(self, acc: Row, accumulators: Any) -> None:
        for other in accumulators:
            acc[0].extend(other[0])
            acc[1].extend(other[1])

    def get_value(self, acc: Row) -> float:
        return iot.integrate_kwh(zip(acc[0], acc[1], strict=True))

    def get_accumulator_type(self) -> DataTypes:
        return DataTypes.ROW(
            [
                DataTypes.FIELD("times_ms", DataTypes.ARRAY(DataTypes.BIGINT())),
                DataTypes.FIELD("powers_w", DataTypes.ARRAY(DataTypes.DOUBLE())),
            ]
        )

    def get_result_type(self) -> DataTypes:
        return DataTypes.DOUBLE()


def _energy_kwh_pandas(power_w: pd.Series, ts: pd.Series) -> float:
    times = pd.to_datetime(ts)
    ms = ((times - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)).tolist()
    return iot.integrate_kwh(zip(ms, power_w.tolist(), strict=True))


energy_kwh = udaf(EnergyKwh())
energy_kwh_pd = udaf(_energy_kwh_pandas, result_type=DataTypes.DOUBLE(), func_type="pandas")


#: SQL name -> Flink function, everything :func:`register_all` registers.
UDFS: dict[str, UserDefinedFunctionWrapper] = {
    "kd_ratio": kd_ratio,
    "player_score": player_score,
    "ip_country": ip_country,
    "browser_family": browser_family,
    "device_family": device_family,
    "energy_kwh": energy_kwh,
    "energy_kwh_pd": energy_kwh_pd,
}


#: SQL names whose implementation depends on the runtime mode (see the table above).
BATCH_FORMS: dict[str, UserDefinedFunctionWrapper] = {
    "energy_kwh": energy_kwh_pd,
}


def is_batch(t_env: TableEnvironment) -> bool:
    """True when the environment runs in batch mode (``execution.runtime-mode``)."""
    return str(t_env.get_config().get("execution.runtime-mode", "STREAMING")).upper() == "BATCH"


def register_all(t_env: TableEnvironment, names: Callable[[str], bool] | None = None) -> None:
    """Register every UDF in :data:`UDFS` (optionally filtered by ``names``) as a temporary
    system function; in batch mode the UDAFs of :data:`BATCH_FORMS` take their pandas form."""
    batch = is_batch(t_env)
    for name, fn in UDFS.items():
        if names is None or names(name):
            t_env.create_temporary_system_function(name, BATCH_FORMS.get(name, fn) if batch else fn)
