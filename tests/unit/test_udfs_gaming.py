"""udfs.gaming as plain Python: K/D ratio zero handling and the score formula."""

import pytest

from udfs.gaming import kd_ratio, player_score

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kills", "deaths", "expected"),
    [(10, 4, 2.5), (3, 3, 1.0), (1, 3, 1 / 3), (7, 0, 7.0), (0, 0, 0.0), (0, 5, 0.0)],
)
def test_kd_ratio(kills: int, deaths: int, expected: float) -> None:
    assert kd_ratio(kills, deaths) == expected


@pytest.mark.parametrize(("kills", "deaths"), [(None, 1), (1, None), (None, None)])
def test_kd_ratio_null_in_null_out(kills: int | None, deaths: int | None) -> None:
    assert kd_ratio(kills, deaths) is None


def test_player_score_formula() -> None:
    # 100*5 + 50*2 + 25*3 + 1234/10 - 30*4 = 500 + 100 + 75 + 123.4 - 120
    assert player_score(5, 4, 2, 3, 1234.0) == 678.4


def test_player_score_nulls_count_as_zero_and_can_be_negative() -> None:
    assert player_score(None, 2, None, None, None) == -60.0
    assert player_score(None, None, None, None, None) is None


def test_the_leaderboard_sql_inlines_exactly_the_player_score_formula() -> None:
    """sql/flink/player_stats.sql computes the score in plain SQL (a Python call there would make
    the window Top-N an updating one); it must stay the formula of udfs.gaming.player_score."""
    import re
    from pathlib import Path

    sql = (Path(__file__).resolve().parents[2] / "sql" / "flink" / "player_stats.sql").read_text()
    (expr,) = re.findall(r"^\s*([^\n]*?)\s+AS score$", sql, re.M)
    assert re.fullmatch(r"[\w\s.*/+-]+", expr), expr  # arithmetic only: safe to evaluate
    for kills, deaths, assists, headshots, damage in [
        (0, 0, 0, 0, 0.0), (7, 2, 3, 4, 1234.5), (1, 9, 0, 1, 15.0), (12, 0, 5, 12, 0.1),
    ]:  # fmt: skip
        env = {"kills": kills, "deaths": deaths, "assists": assists, "headshots": headshots}
        got = eval(expr, {"__builtins__": {}}, {**env, "damage": damage})  # noqa: S307
        assert got == player_score(kills, deaths, assists, headshots, damage)
