"""Multiplayer gaming telemetry: matches of two teams, KILL/DEATH pairs, headshots, damage.

* Players have a skill in [0, 1] (Beta(2, 5): most are average, few are strong). Skill raises the
  odds of being the killer, lowers the odds of being the victim and raises the headshot rate, so
  K/D ratios spread from ~0.3 to ~3 by skill.
* Every KILL of B by A is followed by a DEATH event of B whose ``target_player_id`` is A (same
  weapon, same headshot flag), sometimes an ASSIST by a teammate of A; dead players SPAWN again.
* Concurrent matches scale with the event rate (each match produces ~``match_pace`` events per
  second of event time), so per-player kill rates stay human (a few kills per minute).
* Cheaters (``cheater_fraction`` of players, when ``cheaters=True``) kill about once per second of
  event time with ~90 % headshots: the "impossible kill rate" the security job detects.
"""

from __future__ import annotations

import math
import random
from operator import attrgetter
from typing import Any

from producers.base import Event, EventStream, TimeConfig, id_prefix, make_id, new_clock

TOPIC = "gaming.player-events"
PLAYERS = "gaming.players"
#: where players play (a player's region follows from their id: the seeded stream is unchanged)
REGIONS = ("eu-west", "na-east", "na-west", "asia-east", "sa-east")
#: skill tier -> the lowest skill in it (skill is Beta(2, 5): most players are silver or gold)
TIERS = (("diamond", 0.6), ("platinum", 0.45), ("gold", 0.3), ("silver", 0.15), ("bronze", 0.0))

#: weapon -> (base damage, share of use)
WEAPONS: dict[str, tuple[float, float]] = {
    "ak47": (36.0, 0.22),
    "m4a1": (33.0, 0.22),
    "awp": (115.0, 0.08),
    "mp5": (26.0, 0.14),
    "nova": (26.0, 0.06),
    "deagle": (53.0, 0.10),
    "glock": (28.0, 0.12),
    "knife": (55.0, 0.06),
}
PLATFORMS = (("PC", 0.45), ("PS5", 0.30), ("XBOX", 0.20), ("SWITCH", 0.05))
TEAMS = ("RED", "BLUE")


class _Player:
    __slots__ = ("id", "skill", "cheater", "platform", "weapon", "kill_w", "death_w", "hs")

    def __init__(self, pid: str, skill: float, cheater: bool, platform: str, weapon: str) -> None:
        self.id = pid
        self.skill = skill
        self.cheater = cheater
        self.platform = platform
        self.weapon = weapon
        self.kill_w = math.exp(2.5 * skill)
        self.death_w = math.exp(-2.0 * skill)
        self.hs = 0.92 if cheater else 0.12 + 0.35 * skill


class _Match:
    __slots__ = ("id", "teams", "alive", "dead", "left", "cheater")

    def __init__(self, mid: str, teams: tuple[list[_Player], list[_Player]], length: int) -> None:
        self.id = mid
        self.teams = teams
        self.alive = (list(teams[0]), list(teams[1]))
        self.dead: list[tuple[int, _Player]] = []
        self.left = length
        self.cheater = next(
            ((t, p) for t, team in enumerate(teams) for p in team if p.cheater), None
        )


class GamingGenerator:
    """Iterable event stream; see the module docstring. Deterministic for a given seed."""

    def __init__(
        self,
        seed: int = 0,
        time: TimeConfig | None = None,
        cheaters: bool = True,
        cheater_fraction: float = 0.005,
        team_size: int = 5,
        match_pace: float = 2.0,
        match_actions: tuple[int, int] = (300, 900),
    ) -> None:
        self.rng = random.Random(seed)
        self.tc = time or TimeConfig()
        self.clock = new_clock(self.tc, self.rng)
        self.team_size = team_size
        self.match_actions = match_actions
        n_matches = max(1, math.ceil(self.tc.events_per_second / match_pace))
        n_players = int(n_matches * 2 * team_size * 1.3) + 10
        rng = self.rng
        weapons = list(WEAPONS)
        wweights = [w for _, w in WEAPONS.values()]
        platforms = [p for p, _ in PLATFORMS]
        pweights = [w for _, w in PLATFORMS]
        self.players = [
            _Player(
                f"p{i:06d}",
                rng.betavariate(2, 5),
                cheaters and rng.random() < cheater_fraction,
                rng.choices(platforms, pweights)[0],
                rng.choices(weapons, wweights)[0],
            )
            for i in range(n_players)
        ]
        self.free = list(self.players)
        self._start = self.clock.now
        self._ids = id_prefix(rng)
        self._n = 0
        self.matches = [self._new_match() for _ in range(n_matches)]

    def _new_match(self) -> _Match:
        n = self.team_size
        free, rng = self.free, self.rng
        picked = []
        for _ in range(2 * n):  # random picks, O(1) each: swap with the last, pop
            j = rng.randrange(len(free))
            free[j], free[-1] = free[-1], free[j]
            picked.append(free.pop())
        length = self.rng.randint(*self.match_actions)
        return _Match(make_id(self.rng), (picked[:n], picked[n:]), length)

    def _end_match(self, i: int) -> None:
        m = self.matches[i]
        for team in m.teams:
            self.free.extend(team)
        self.matches[i] = self._new_match()

    def _event(
        self,
        m: _Match,
        team: int,
        p: _Player,
        kind: str,
        target: _Player | None,
        damage: float,
        headshot: bool,
        weapon: str,
    ) -> Event:
        clock = self.clock
        t = clock.stamp(clock.tick())
        n = self._n = self._n + 1
        rec = {
            "event_id": f"{self._ids}{n:012x}",
            "match_id": m.id,
            "player_id": p.id,
            "team": TEAMS[team],
            "event_type": kind,
            "target_player_id": target.id if target is not None else None,
            "damage": damage,
            "headshot": headshot,
            "weapon": weapon,
            "event_time": t,
            "platform": p.platform,
        }
        return p.id, rec, TOPIC

    def reference(self) -> list[tuple[str, dict[str, Any], str, int]]:
        """Every player's profile (region, skill tier) at the start of the stream, as (key,
        record, topic, Kafka timestamp): `produce gaming` writes them to gaming.players first."""
        t = int(self._start)
        return [
            (p.id, {"player_id": p.id, "region": REGIONS[int(p.id[1:]) % len(REGIONS)],
                    "skill_tier": tier(p.skill), "updated_at": t}, PLAYERS, t)
            for p in self.players
        ]  # fmt: skip

    def __iter__(self) -> EventStream:
        rng = self.rng
        matches = self.matches
        while True:
            i = rng.randrange(len(matches))
            m = matches[i]
            m.left -= 1
            if m.left <= 0:
                self._end_match(i)
                continue
            r = rng.random()
            if m.dead and r < 0.18:
                team, p = m.dead.pop(rng.randrange(len(m.dead)))
                m.alive[team].append(p)
                yield self._event(m, team, p, "SPAWN", None, 0.0, False, "none")
                continue
            if m.cheater is not None and r < 0.5:
                team, attacker = m.cheater
                if attacker not in m.alive[team]:  # cheaters respawn at once
                    m.dead = [d for d in m.dead if d[1] is not attacker]
                    m.alive[team].append(attacker)
                    yield self._event(m, team, attacker, "SPAWN", None, 0.0, False, "none")
                    continue
                yield from self._kill(m, team, attacker)
                continue
            team = rng.getrandbits(1)
            if not m.alive[team] or not m.alive[1 - team]:
                continue
            attackers = m.alive[team]
            attacker = _pick(rng, attackers, True)
            if r < 0.32:
                yield from self._kill(m, team, attacker)
            else:
                victims = m.alive[1 - team]
                victim = _pick(rng, victims, False)
                hs = rng.random() < attacker.hs
                base = WEAPONS[attacker.weapon][0]
                dmg = round(base * (0.6 + 0.6 * rng.random()) * (2.0 if hs else 1.0), 1)
                yield self._event(m, team, attacker, "DAMAGE", victim, dmg, hs, attacker.weapon)

    def _kill(self, m: _Match, team: int, attacker: _Player) -> list[Event]:
        """KILL and DEATH (after a SPAWN if the other side is all dead), maybe an ASSIST."""
        rng = self.rng
        event = self._event
        enemy = 1 - team
        victims = m.alive[enemy]
        out = []
        if not victims:
            # everyone on the other side is dead: the first of them respawns
            for j, (t, p) in enumerate(m.dead):
                if t == enemy:
                    m.dead.pop(j)
                    victims.append(p)
                    out.append(event(m, enemy, p, "SPAWN", None, 0.0, False, "none"))
                    break
            if not victims:
                return out
        victim = _pick(rng, victims, False)
        hs = rng.random() < attacker.hs
        weapon = attacker.weapon
        dmg = round(WEAPONS[weapon][0] * (0.8 + 0.4 * rng.random()) * (2.0 if hs else 1.0), 1)
        out.append(event(m, team, attacker, "KILL", victim, dmg, hs, weapon))
        out.append(event(m, enemy, victim, "DEATH", attacker, 0.0, hs, weapon))
        victims.remove(victim)
        m.dead.append((enemy, victim))
        mates = [p for p in m.alive[team] if p is not attacker]
        if mates and rng.random() < 0.35:
            helper = mates[rng.randrange(len(mates))]
            dmg = round(20 + 60 * rng.random(), 1)
            out.append(event(m, team, helper, "ASSIST", victim, dmg, False, helper.weapon))
        return out


_KILL_W = attrgetter("kill_w")
_DEATH_W = attrgetter("death_w")


def _pick(rng: random.Random, players: list[_Player], killer: bool) -> _Player:
    """A player drawn with probability proportional to its kill (or death) weight."""
    if killer:
        x = rng.random() * sum(map(_KILL_W, players))
        for p in players:
            x -= p.kill_w
            if x <= 0:
                return p
    else:
        x = rng.random() * sum(map(_DEATH_W, players))
        for p in players:
            x -= p.death_w
            if x <= 0:
                return p
    return players[-1]


def tier(skill: float) -> str:
    """The matchmaking tier of a skill in [0, 1]."""
    return next(name for name, low in TIERS if skill >= low)


def generate(seed: int = 0, time: TimeConfig | None = None, **options: Any) -> EventStream:
    """Endless, seeded stream of (player_id, PlayerEvent dict, topic); options: see GamingGenerator."""
    return iter(GamingGenerator(seed=seed, time=time, **options))
