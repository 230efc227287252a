"""Flink wrappers for the plain functions in this package, and :func:`register_all`.

Only this module imports pyflink. ``register_all(t_env)`` registers every UDF in :data:`UDFS` as a
temporary *system* function (callable from any catalog/database) under its SQL name.

Aggregates are SQL (Flink's built-in ``PERCENTILE``, same definition as udfs.stats, stays in
the JVM); there is no Python UDAF, why: docs/udfs.md.
"""

from __future__ import annotations

from collections.abc import Callable

from pyflink.table import DataTypes, TableEnvironment
from pyflink.table.udf import UserDefinedFunctionWrapper, udf

from udfs import gaming, geo, web

# --- scalar UDFs ---------------------------------------------------------------------------

kd_ratio = udf(gaming.kd_ratio, result_type=DataTypes.DOUBLE())
player_score = udf(gaming.player_score, result_type=DataTypes.DOUBLE())
ip_country = udf(geo.ip_country, result_type=DataTypes.STRING())
browser_family = udf(web.browser_family, result_type=DataTypes.STRING())
device_family = udf(web.device_family, result_type=DataTypes.STRING())


#: SQL name -> Flink function, everything :func:`register_all` registers.
UDFS: dict[str, UserDefinedFunctionWrapper] = {
    "kd_ratio": kd_ratio,
    "player_score": player_score,
    "ip_country": ip_country,
    "browser_family": browser_family,
    "device_family": device_family,
}


def register_all(t_env: TableEnvironment, names: Callable[[str], bool] | None = None) -> None:
    """Register every UDF in :data:`UDFS` (optionally filtered by ``names``) as a temporary
    system function."""
    for name, fn in UDFS.items():
        if names is None or names(name):
            t_env.create_temporary_system_function(name, fn)
