"""`flinkpulse rules`: bad arguments are one line and exit 2, before any service is needed."""

from __future__ import annotations

import pytest

from flinkpulse import cli, rules


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rules", "set", "door_open_while_armed", "--watts", "1"], "has no live parameters"),
        (["rules", "set", "energy_over_threshold", "--count", "3"], "takes --watts, not --count"),
        (["rules", "set", "energy_over_threshold", "--ip", "1.2.3.4", "--watts", "9"], "per home"),
        (["rules", "set", "brute_force_login", "--count", "0"], "must be a positive number"),
        (["rules", "set", "brute_force_login"], "give the value with --count"),
        (["rules", "unset", "brute_force_login", "--home", "h1"], "per ip or globally"),
    ],
)
def test_bad_rule_arguments_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_every_live_rule_parameter_has_a_job_default() -> None:
    from flink_jobs.security_alerts import DEFAULTS

    assert {p.job_param for p in rules.PARAMS.values()} <= set(DEFAULTS)
    assert rules.rule_key("energy_over_threshold", "home:h1") == "energy_over_threshold/home:h1"
