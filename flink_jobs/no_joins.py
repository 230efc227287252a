"""A job without its event-time temporal joins, for `flinkpulse bench` (issue 22): a diagnostic
variant, not a job to deploy — it gives wrong attributions on purpose.

    flink run -py flink_jobs/no_joins.py --job device_stats [job flags]

The job's own sources, `.sql` file, parameters, Python UDFs, deduplication and sinks, with every
``LEFT JOIN <versioned table> FOR SYSTEM_TIME AS OF ... AS <alias> ON ...`` removed from its SQL
and each ``<alias>.<column>`` of that statement replaced by a typed NULL: what a LEFT JOIN gives
a row whose key the reference table does not know. The versioned table is then unused and the
planner drops its source, so the A/B against the job as configured (`udf` vs `udf+no_join`,
flinkpulse/bench/jobs.py) prices the join and the reference topic's source together.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from flink_jobs import common
from flink_jobs.common import JobContext

_JOIN = re.compile(
    r"\s+LEFT\s+JOIN\s+(\w+)\s+FOR\s+SYSTEM_TIME\s+AS\s+OF\s+[\w.`]+\s+AS\s+(\w+)\s+ON\s+[^\n;]*",
    re.IGNORECASE,
)


def drop_temporal_joins(stmt: str, columns: Callable[[str], dict[str, str]]) -> str:
    """`stmt` without its event-time temporal LEFT JOINs (the ON condition ends at the line's
    end, as in sql/flink/*.sql); `alias.column` of a dropped join becomes
    ``CAST(NULL AS <type>)``, the type from `columns(table)` (column -> SQL type)."""
    joins = _JOIN.findall(stmt)
    if not joins:
        return stmt
    stmt = _JOIN.sub("", stmt)
    for table, alias in joins:
        types = columns(table)

        def null(m: re.Match[str], types: dict[str, str] = types) -> str:
            return f"CAST(NULL AS {types[m.group(1)]})"

        stmt = re.sub(rf"\b{alias}\.`?(\w+)`?", null, stmt)
    return stmt


def column_types(t_env: Any, table: str) -> dict[str, str]:
    """column -> nullable SQL type (time attributes as plain timestamps) of a registered table."""
    schema = t_env.from_path(table)._j_table.getResolvedSchema()
    out = {}
    for col in schema.getColumns():
        logical = col.getDataType().getLogicalType().copy(True)
        out[col.getName()] = re.sub(r"\s*\*\w+\*", "", logical.asSummaryString())
    return out


def no_joins_wire(ctx: JobContext, *args: Any, **kwargs: Any) -> JobContext:
    """`common.wire` (same arguments) with the temporal joins of the job's SQL dropped."""

    def rewrite(stmt: str) -> str:
        return drop_temporal_joins(stmt, lambda table: column_types(ctx.t_env, table))

    return common.wire(ctx, *args, **{**kwargs, "rewrite": rewrite})


def main(argv: list[str] | None = None) -> None:
    common.run_variant_job("flink_jobs/no_joins.py", "nojoin", no_joins_wire, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
