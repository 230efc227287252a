"""Gaming UDFs: K/D ratio and a per-player score (plain Python, no Flink import).

Why Python: SQL can divide, but the zero-death rule and the score formula are product logic
that deserves one tested definition shared by every job and the dashboards' documentation.
"""

from __future__ import annotations

# Score weights: a kill is worth two assists and four headshot bonuses; a death costs 30.
KILL_POINTS = 100.0
ASSIST_POINTS = 50.0
HEADSHOT_POINTS = 25.0
DAMAGE_DIVISOR = 10.0
DEATH_PENALTY = 30.0


def kd_ratio(kills: int | None, deaths: int | None) -> float | None:
    """Kills per death as an exact double (not rounded).

    Zero handling: with 0 deaths the ratio is computed as if the player had died once, so
    ``kd_ratio(7, 0) == 7.0`` and ``kd_ratio(0, 0) == 0.0`` (never infinity or NULL, which would
    break ORDER BY and averages). Any NULL input gives NULL.
    """
    if kills is None or deaths is None:
        return None
    return float(kills) / float(deaths if deaths > 0 else 1)


def player_score(
    kills: int | None,
    deaths: int | None,
    assists: int | None,
    headshots: int | None,
    damage: float | None,
) -> float | None:
    """Leaderboard score: ``100*kills + 50*assists + 25*headshots + damage/10 - 30*deaths``.

    NULL counts are treated as 0 (a window with no DEATH rows has a NULL SUM); the result is
    NULL only when every input is NULL. The score can be negative.
    """
    values = (kills, deaths, assists, headshots, damage)
    if all(v is None for v in values):
        return None
    return (
        KILL_POINTS * (kills or 0)
        + ASSIST_POINTS * (assists or 0)
        + HEADSHOT_POINTS * (headshots or 0)
        + (damage or 0.0) / DAMAGE_DIVISOR
        - DEATH_PENALTY * (deaths or 0)
    )
