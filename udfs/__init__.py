"""Python UDFs of flinkpulse: plain typed functions, wrapped for Flink in :mod:`udfs.flink`.

| SQL name | Python | signature |
|---|---|---|
| ``kd_ratio`` | :func:`udfs.gaming.kd_ratio` | (kills INT, deaths INT) -> DOUBLE |
| ``player_score`` | :func:`udfs.gaming.player_score` | (kills, deaths, assists, headshots INT, damage DOUBLE) -> DOUBLE |
| ``ip_country`` | :func:`udfs.geo.ip_country` | (ip STRING) -> STRING (ISO alpha-2, 'ZZ' unknown) |
| ``browser_family`` | :func:`udfs.web.browser_family` | (ua STRING) -> STRING |
| ``device_family`` | :func:`udfs.web.device_family` | (ua STRING) -> STRING (desktop/mobile/tablet/bot/other) |
| ``energy_kwh`` | :func:`udfs.iot.integrate_kwh` (UDAF) | (power_w DOUBLE, ts TIMESTAMP(3)) -> DOUBLE |
| ``energy_kwh_pd`` | same, pandas UDAF | (power_w DOUBLE, ts TIMESTAMP(3)) -> DOUBLE |

Percentiles: Flink's built-in ``PERCENTILE(value, p)`` (:func:`udfs.stats.percentile` is the
reference definition the tests hold it to). Which UDAF form works in which
window form and runtime mode is in :mod:`udfs.flink`. For producers, :func:`udfs.geo.random_ip`
draws IPs that ``ip_country`` maps to a chosen country.
"""
