"""Web access logs: sessions with realistic navigation, status mix, long-tailed latency,
real-world user agents and client IPs from real country address ranges — plus attacks.

* Sessions: a client (IP from a country-weighted pool, one user agent) lands from a search
  engine, social link or directly, then walks the shop (home, categories, products, search,
  cart, checkout, login, account, blog) with static assets along the way; each request's
  referrer is the previous page. About a third of sessions log in.
* Status mix: mostly 200; 304 for cached assets, 301 for legacy URLs, 404 for dead links,
  401 for a mistyped password (rare), 500 now and then (slow). Latency is log-normal per
  endpoint with a Pareto tail; bytes by content type.
* Client IPs are drawn per country from the address blocks the regional registries assigned
  to it (``udfs.geo.random_ip``, the same data the ``web_traffic`` job looks countries up in),
  precomputed once into pools — never a Faker call per event.
* Attacks (``attacks=True``), starting every ``attack_interval_s`` of event time on average:
  brute-force logins (5–12 ``POST /login`` answered 401 from one IP within ~45 s, then a 200)
  and 404 scanners (an IP probing ``/wp-login.php``, ``/.env``, ``/.git/config``...). Attackers
  come from their own IP pool. Without attacks no IP fails 5 logins within 60 s.
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any

from producers.base import EventStream, TimeConfig, id_prefix, new_clock

TOPIC = "web.access-logs"
SITE = "https://shop.example.com"

#: country -> share of visitors
VISITOR_COUNTRIES = {
    "US": 30, "DE": 8, "GB": 7, "IN": 7, "FR": 5, "BR": 5, "JP": 4, "CA": 4, "NL": 3, "ES": 3,
    "IT": 3, "AU": 3, "PL": 2, "SE": 2, "MX": 3, "KR": 2, "TR": 2, "ID": 2, "ZA": 1, "AR": 1,
}  # fmt: skip
ATTACKER_COUNTRIES = {"RU": 3, "CN": 3, "VN": 2, "BR": 1, "NL": 1, "US": 1, "RO": 1, "IN": 1}

#: (user agent, weight): current browsers on desktop and mobile, plus well-known crawlers
USER_AGENTS: list[tuple[str, int]] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 26),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 9),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15", 7),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1", 16),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", 14),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 5),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", 6),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 2),
    ("Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1", 3),
    ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", 3),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 3),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 1),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)", 1),
]  # fmt: skip
ATTACK_AGENTS = [
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.124 Safari/537.36",
]
EXTERNAL_REFERRERS = [
    ("https://www.google.com/", 40),
    (None, 30),
    ("https://www.bing.com/", 6),
    ("https://duckduckgo.com/", 4),
    ("https://t.co/", 4),
    ("https://www.facebook.com/", 6),
    ("https://www.reddit.com/", 3),
    ("https://news.ycombinator.com/", 1),
]
SCAN_PATHS = [
    "/wp-login.php", "/wp-admin/", "/xmlrpc.php", "/.env", "/.git/config", "/phpmyadmin/",
    "/admin.php", "/config.php", "/server-status", "/backup.zip", "/db.sql", "/.aws/credentials",
    "/actuator/env", "/cgi-bin/luci", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/solr/admin/info/system", "/HNAP1/", "/boaform/admin/formLogin", "/.DS_Store", "/owa/",
    "/api/.env", "/wp-content/plugins/", "/console/", "/manager/html", "/.svn/entries",
]  # fmt: skip
CATEGORIES = ["shoes", "jackets", "bags", "watches", "electronics", "books", "toys", "garden"]
BLOG = ["summer-sale", "how-to-choose-running-shoes", "gift-guide", "sustainability", "new-in"]

#: page kind -> [(next page kind, weight)]
_NEXT: dict[str, list[tuple[str, int]]] = {
    "home": [("category", 40), ("product", 20), ("search", 20), ("login", 6), ("blog", 6), ("static", 30)],
    "category": [("product", 55), ("category", 15), ("search", 10), ("home", 5), ("static", 20), ("legacy", 2)],
    "product": [("product", 30), ("cart", 15), ("category", 20), ("search", 10), ("api", 25), ("static", 15), ("dead", 2)],
    "search": [("product", 60), ("search", 20), ("category", 10), ("api", 5)],
    "cart": [("checkout", 40), ("product", 30), ("login", 10), ("home", 5)],
    "checkout": [("account", 30), ("home", 20), ("product", 10)],
    "login": [("account", 50), ("home", 30), ("cart", 20)],
    "account": [("home", 40), ("product", 30), ("category", 20)],
    "blog": [("blog", 20), ("product", 30), ("home", 20), ("static", 20)],
    "static": [("product", 30), ("category", 30), ("home", 10), ("api", 10)],
    "api": [("product", 40), ("category", 20), ("cart", 10)],
    "legacy": [("category", 60), ("product", 40)],
    "dead": [("home", 60), ("search", 40)],
}  # fmt: skip
#: page kind -> (median latency ms, sigma, bytes low, bytes high)
_COST = {
    "home": (45.0, 0.5, 30_000, 60_000),
    "category": (60.0, 0.6, 25_000, 80_000),
    "product": (55.0, 0.6, 20_000, 70_000),
    "search": (120.0, 0.7, 15_000, 50_000),
    "cart": (70.0, 0.5, 10_000, 20_000),
    "checkout": (180.0, 0.6, 12_000, 25_000),
    "login": (90.0, 0.4, 2_000, 4_000),
    "account": (80.0, 0.5, 15_000, 30_000),
    "blog": (40.0, 0.5, 20_000, 90_000),
    "static": (4.0, 0.6, 20_000, 300_000),
    "api": (25.0, 0.7, 800, 6_000),
    "legacy": (3.0, 0.3, 0, 0),
    "dead": (6.0, 0.3, 1_100, 1_300),
}
_STATIC = ["/static/js/app.3f9a1c.js", "/static/css/main.77b2e0.css", "/static/img/logo.svg",
           "/static/js/vendor.c0ffee.js", "/static/fonts/inter.woff2", "/favicon.ico"]  # fmt: skip


class _Session:
    __slots__ = ("id", "ip", "ua", "user", "page", "path", "left")

    def __init__(self, sid: str, ip: str, ua: str, user: str | None, left: int) -> None:
        self.id = sid
        self.ip = ip
        self.ua = ua
        self.user = user
        self.page = ""  # kind of the current page; "" before the first request
        self.path = ""
        self.left = left


def _cum(weighted: list[tuple[Any, int]] | dict[Any, int]) -> tuple[list[Any], list[float]]:
    items = list(weighted.items()) if isinstance(weighted, dict) else weighted
    total = float(sum(w for _, w in items))
    acc, out = 0.0, []
    for _, w in items:
        acc += w / total
        out.append(acc)
    return [k for k, _ in items], out


class WebGenerator:
    """Iterable stream of access-log records. Deterministic for a seed."""

    def __init__(
        self,
        seed: int = 0,
        time: TimeConfig | None = None,
        attacks: bool = True,
        attack_interval_s: float = 60.0,
        sessions: int | None = None,
        ip_pool: int = 20_000,
    ) -> None:
        from udfs.geo import random_ip

        self.rng = rng = random.Random(seed)
        self.tc = time or TimeConfig()
        self.clock = new_clock(self.tc, rng)
        self.attacks = attacks
        self.attack_interval_ms = attack_interval_s * 1000.0
        countries, cum = _cum(VISITOR_COUNTRIES)
        self.ips = [random_ip(countries[_bisect(cum, rng.random())], rng) for _ in range(ip_pool)]
        acountries, acum = _cum(ATTACKER_COUNTRIES)
        self.attacker_ips = [
            random_ip(acountries[_bisect(acum, rng.random())], rng) for _ in range(500)
        ]
        self._ua = _cum(USER_AGENTS)
        self._ref = _cum(EXTERNAL_REFERRERS)
        self._next = {k: _cum(v) for k, v in _NEXT.items()}
        n_sessions = sessions or int(min(50_000, max(50, self.tc.events_per_second * 8)))
        self._ids = id_prefix(rng)
        self._sid = id_prefix(rng)
        self._n = 0
        self._ns = 0
        self._users = 0
        self.sessions = [self._new_session() for _ in range(n_sessions)]
        #: scheduled attack requests: (event time, seq, record)
        self._heap: list[tuple[int, int, dict[str, Any]]] = []
        self._seq = 0
        self._next_attack = self.clock.now + self._gap()

    def _gap(self) -> float:
        return self.rng.expovariate(1.0 / self.attack_interval_ms)

    def _new_session(self) -> _Session:
        rng = self.rng
        self._ns += 1
        uas, cum = self._ua
        user = None
        if rng.random() < 0.3:
            user = f"u{rng.randrange(200_000):06d}"
        return _Session(
            f"{self._sid}{self._ns:012x}",
            self.ips[rng.randrange(len(self.ips))],
            uas[_bisect(cum, rng.random())],
            user,
            int(rng.paretovariate(1.3) * 4),
        )

    def _path(self, kind: str) -> tuple[str, str]:
        """(method, path) for a page kind."""
        rng = self.rng
        if kind == "home":
            return "GET", "/"
        if kind == "category":
            return "GET", f"/c/{CATEGORIES[rng.randrange(len(CATEGORIES))]}"
        if kind == "product":
            # popularity is Zipf-like: a few products get most views
            return "GET", f"/p/{int((rng.paretovariate(1.2) - 1.0) * 40) % 5000:04d}"
        if kind == "search":
            return "GET", "/search"
        if kind == "cart":
            return ("POST" if rng.random() < 0.4 else "GET"), "/cart"
        if kind == "checkout":
            return ("POST" if rng.random() < 0.5 else "GET"), "/checkout"
        if kind == "login":
            return "POST", "/login"
        if kind == "account":
            return "GET", "/account"
        if kind == "blog":
            return "GET", f"/blog/{BLOG[rng.randrange(len(BLOG))]}"
        if kind == "static":
            return "GET", _STATIC[rng.randrange(len(_STATIC))]
        if kind == "api":
            return "GET", "/api/v1/recommendations"
        if kind == "legacy":
            return "GET", "/products.php"  # legacy URL, redirected
        return "GET", f"/p/{rng.randrange(90000, 99999)}"  # dead link

    def _record(self, t: int, ip: str, user: str | None, sid: str, method: str, path: str,
                status: int, nbytes: int, latency: float, ua: str, ref: str | None) -> dict[str, Any]:  # fmt: skip
        self._n += 1
        return {
            "event_id": f"{self._ids}{self._n:012x}",
            "client_ip": ip,
            "user_id": user,
            "session_id": sid,
            "method": method,
            "path": path,
            "status": status,
            "bytes": nbytes,
            "latency_ms": latency,
            "user_agent": ua,
            "referrer": ref,
            "event_time": t,
        }

    def _request(self, s: _Session, t: int) -> dict[str, Any]:
        rng = self.rng
        if not s.page:
            refs, cum = self._ref
            ref = refs[_bisect(cum, rng.random())]
            kind = (
                "home" if rng.random() < 0.5 else ("product" if rng.random() < 0.6 else "category")
            )
        else:
            ref = SITE + s.path
            kinds, cum = self._next[s.page]
            kind = kinds[_bisect(cum, rng.random())]
        method, path = self._path(kind)
        median, sigma, lo, hi = _COST[kind]
        status = 200
        r = rng.random()
        if kind == "legacy":
            status = 301
        elif kind == "dead":
            status = 404
        elif kind == "static" and r < 0.3:
            status = 304
        elif kind == "login":
            if r < 0.06:
                status = 401
            else:
                s.user = s.user or f"u{rng.randrange(200_000):06d}"
        elif r < 0.004:
            status = 500
        if kind in ("account", "checkout") and s.user is None:
            status = 302
        latency = median * math.exp(sigma * rng.gauss(0.0, 1.0))
        if rng.random() < 0.01:
            latency *= rng.paretovariate(1.5) * 5  # the long tail: GC pauses, cold caches
        if status == 500:
            latency = latency * 8 + 200
        nbytes = 0 if status in (301, 302, 304) else lo + int((hi - lo) * rng.random())
        if kind != "static":
            s.page, s.path = kind, path
        return self._record(
            self.clock.stamp(t), s.ip, s.user, s.id, method, path, status, nbytes,
            round(latency, 2), s.ua, ref,
        )  # fmt: skip

    # -- attacks -------------------------------------------------------------------------------
    def _schedule(self, t: float, rec: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (int(t), self._seq, rec))

    def _start_attack(self, t: float) -> None:
        rng = self.rng
        ip = self.attacker_ips[rng.randrange(len(self.attacker_ips))]
        ua = ATTACK_AGENTS[rng.randrange(len(ATTACK_AGENTS))]
        self._ns += 1
        sid = f"{self._sid}{self._ns:012x}"
        if rng.random() < 0.5:
            # brute force: 5-12 failures within ~45 s, then the password that works
            victim = f"u{rng.randrange(200_000):06d}"
            for _ in range(rng.randint(5, 12)):
                t += 300 + rng.random() * 3200
                lat = round(80 + 40 * rng.random(), 2)
                rec = self._record(
                    int(t), ip, None, sid, "POST", "/login", 401, 1200, lat, ua, None
                )
                self._schedule(t, rec)
            t += 500 + rng.random() * 2000
            rec = self._record(int(t), ip, victim, sid, "POST", "/login", 200, 2400, 95.0, ua, None)
            self._schedule(t, rec)
            t += 300 + rng.random() * 1000
            rec = self._record(int(t), ip, victim, sid, "GET", "/account", 200, 18000, 70.0, ua,
                               SITE + "/login")  # fmt: skip
            self._schedule(t, rec)
        else:
            # 404 scanner: probe well-known admin/backup paths quickly
            for path in rng.sample(SCAN_PATHS, rng.randint(12, len(SCAN_PATHS))):
                t += 50 + rng.random() * 450
                status = 403 if path.endswith("/") and rng.random() < 0.2 else 404
                lat = round(3 + 4 * rng.random(), 2)
                method = "GET" if rng.random() < 0.9 else "HEAD"
                rec = self._record(int(t), ip, None, sid, method, path, status, 1150, lat, ua, None)
                self._schedule(t, rec)

    def __iter__(self) -> EventStream:
        rng = self.rng
        clock = self.clock
        sessions = self.sessions
        heap = self._heap
        while True:
            t = clock.tick()
            if self.attacks and t >= self._next_attack:
                self._start_attack(t)
                self._next_attack = t + self._gap()
            if heap and heap[0][0] <= t:
                rec = heapq.heappop(heap)[2]
                yield rec["client_ip"], rec, TOPIC
                continue
            j = rng.randrange(len(sessions))
            s = sessions[j]
            rec = self._request(s, t)
            s.left -= 1
            if s.left <= 0:
                sessions[j] = self._new_session()
            yield s.ip, rec, TOPIC


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def generate(seed: int = 0, time: TimeConfig | None = None, **options: Any) -> EventStream:
    """Endless, seeded stream of (client_ip, AccessLog dict, topic); see WebGenerator."""
    return iter(WebGenerator(seed=seed, time=time, **options))
