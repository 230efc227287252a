"""The rule names `alerts tail --rule` accepts are exactly the rules the job's SQL raises."""

from __future__ import annotations

import re

from flinkpulse.alerts import RULES
from flinkpulse.paths import ROOT


def test_rules_are_the_ones_in_security_alerts_sql() -> None:
    sql = (ROOT / "sql" / "flink" / "security_alerts.sql").read_text()
    raised = set(re.findall(r"'([a-z_]+)'\s+AS\s+rule\b", sql))
    assert raised == set(RULES)
