"""flinkpulse's Flink jobs: one module per job, each with a pure `build(t_env, cfg)` and `main(argv)`.

Run on any cluster with `flink run -py flink_jobs/<job>.py [-- job flags]`, or
`flinkpulse jobs submit <job>`. Nothing runs at import time.
"""

JOBS = ["player_stats", "device_stats", "web_traffic", "security_alerts"]
