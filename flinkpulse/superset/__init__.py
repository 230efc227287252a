"""Superset dashboards as code: the bundle in ``deploy/superset/`` and its import/export.

* :mod:`flinkpulse.superset.definitions` — the four dashboards as a small Python source that
  generates the bundle (Superset's own export layout, fixed UUIDs, no passwords).
* :mod:`flinkpulse.superset.bundle` — read/write the bundle directory, zip it for import.
* :mod:`flinkpulse.superset.client` — Superset's REST API (login, import, export, chart data).
"""
