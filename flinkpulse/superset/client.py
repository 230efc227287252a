"""A small client for Superset's REST API: login (JWT + CSRF), assets import, export, listings.

Used by `flinkpulse dashboards import|export` and by the tests (chart-data API).
"""

from __future__ import annotations

import json
from typing import Any

import requests

from flinkpulse.errors import FlinkpulseError, ServiceUnreachable


def rison_ids(ids: list[int]) -> str:
    """A rison list of ints, as Superset's ``?q=`` wants it: ``!(1,2,3)``."""
    return "!(" + ",".join(str(i) for i in ids) + ")"


class SupersetClient:
    """An authenticated session against one Superset (base URL, e.g. http://127.0.0.1:8088)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Referer"] = self.url
        self._login(username, password)

    def _login(self, username: str, password: str) -> None:
        try:
            r = self.session.post(
                f"{self.url}/api/v1/security/login",
                json={"username": username, "password": password, "provider": "db"},
                timeout=self.timeout,
            )
        except requests.ConnectionError:
            raise ServiceUnreachable("Superset", self.url) from None
        if r.status_code == 401:
            raise FlinkpulseError(f"Superset at {self.url} rejected the login of {username!r}")
        self._check(r, "login")
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        csrf = self.get("/api/v1/security/csrf_token/")["result"]
        self.session.headers["X-CSRFToken"] = csrf

    # -- plumbing ------------------------------------------------------------------------------
    @staticmethod
    def _check(r: requests.Response, what: str) -> None:
        if r.status_code >= 400:
            try:
                detail: Any = r.json()
            except ValueError:
                detail = r.text[:500]
            raise FlinkpulseError(f"Superset {what} failed (HTTP {r.status_code}): {detail}")

    def get(self, path: str, **params: Any) -> Any:
        r = self.session.get(f"{self.url}{path}", params=params or None, timeout=self.timeout)
        self._check(r, f"GET {path}")
        return r.json()

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        r = self.session.post(f"{self.url}{path}", json=payload, timeout=self.timeout)
        self._check(r, f"POST {path}")
        return r.json()

    # -- resources -----------------------------------------------------------------------------
    def objects(self, resource: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        """Every object of `resource` (dashboard, chart, dataset, database)."""
        out: list[dict[str, Any]] = []
        page = 0
        cols = f",columns:!({','.join(columns)})" if columns else ""
        while True:
            res = self.get(f"/api/v1/{resource}/", q=f"(page:{page},page_size:100{cols})")
            out.extend(res["result"])
            if len(out) >= res["count"] or not res["result"]:
                return out
            page += 1

    def import_assets(self, bundle_zip: bytes, passwords: dict[str, str]) -> None:
        """Import a bundle, overwriting every object with the same UUID (databases, datasets,
        charts, dashboards): re-importing updates, never duplicates."""
        r = self.session.post(
            f"{self.url}/api/v1/assets/import/",
            files={"bundle": ("bundle.zip", bundle_zip, "application/zip")},
            data={"passwords": json.dumps(passwords)},
            timeout=self.timeout,
        )
        self._check(r, "import")

    def export_dashboards(self, ids: list[int]) -> bytes:
        """The export zip of these dashboards with their charts, datasets and databases."""
        r = self.session.get(
            f"{self.url}/api/v1/dashboard/export/", params={"q": rison_ids(ids)}, timeout=300
        )
        self._check(r, "export")
        return r.content

    def chart_data(self, chart_id: int) -> dict[str, Any]:
        """The chart's data through its saved query context (what the dashboard shows)."""
        return self.get(f"/api/v1/chart/{chart_id}/data/", format="json")  # type: ignore[no-any-return]
