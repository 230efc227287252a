"""Python UDFs of flinkpulse: plain typed functions, wrapped for Flink in :mod:`udfs.flink`.

| SQL name | Python | signature |
|---|---|---|
| ``kd_ratio`` | :func:`udfs.gaming.kd_ratio` | (kills INT, deaths INT) -> DOUBLE |
| ``player_score`` | :func:`udfs.gaming.player_score` | (kills, deaths, assists, headshots INT, damage DOUBLE) -> DOUBLE |
| ``ip_country`` | :func:`udfs.geo.ip_country` | (ip STRING) -> STRING (ISO alpha-2, 'ZZ' unknown) |
| ``browser_family`` | :func:`udfs.web.browser_family` | (ua STRING) -> STRING |
| ``device_family`` | :func:`udfs.web.device_family` | (ua STRING) -> STRING (desktop/mobile/tablet/bot/other) |

Percentiles: Flink's built-in ``PERCENTILE(value, p)`` (:func:`udfs.stats.percentile` is the
reference definition the tests hold it to); there is no Python UDAF (docs/udfs.md). For
producers, :func:`udfs.geo.random_ip` draws IPs that ``ip_country`` maps to a chosen country.
"""
