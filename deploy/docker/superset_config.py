"""Superset settings for the compose deployment: everything secret comes from the environment."""

import os
from urllib.parse import quote

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
_db_password = quote(os.environ["SUPERSET_DB_PASSWORD"], safe="")
_db_host = os.environ.get("SUPERSET_DB_HOST", "superset-db")
SQLALCHEMY_DATABASE_URI = f"postgresql+psycopg2://superset:{_db_password}@{_db_host}:5432/superset"
# Add ClickHouse in the UI (or `flinkpulse dashboards import`) as
#   clickhousedb://flinkpulse:<CLICKHOUSE_PASSWORD>@clickhouse:8123/flinkpulse
