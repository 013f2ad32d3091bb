"""A small client of the Airflow API server's REST API v2: DAGs, DAG runs, task instances, task logs.

Authentication goes through the simple auth manager: a token without credentials when every user is
an admin (embedded profile), or the ``admin`` user's password otherwise, read from the 0600 file
:func:`reelrec.airflow_local.ensure_login` generated at the stack's first start.
"""

from __future__ import annotations

import time
from typing import Any

from reelrec.airflow_local import ADMIN_USER, api_url, passwords_file, read_passwords
from reelrec.dates import add_days
from reelrec.settings import Settings


class AirflowApiError(RuntimeError):
    """The API server answered with an error, or did not answer in time."""


def run_id_of(date: str) -> str:
    """The run id ``reelrec run`` gives the night of logical date ``date`` (the date is visible in the UI)."""
    return f"nightly__{date}"


class AirflowApi:
    """The API server of ``settings``' stack (``http://127.0.0.1:<ui_port>``)."""

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        import httpx

        self.settings = settings
        self.base_url = api_url(settings)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s)
        self._token: str | None = None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def token(self) -> str:
        """A JWT from the simple auth manager (all-admins: no credentials; else the ``admin`` user)."""
        if self._token is None:
            if self.settings.profile == "embedded":
                response = self._http.get("/auth/token")
            else:
                password = read_passwords(self.settings).get(ADMIN_USER)
                if not password:
                    raise AirflowApiError(
                        f"no password for Airflow user {ADMIN_USER!r} in {passwords_file(self.settings)}; "
                        "`reelrec services up` generates it at the stack's first start"
                    )
                credentials = {"username": ADMIN_USER, "password": password}
                response = self._http.post("/auth/token", json=credentials)
            self._check(response)
            self._token = str(response.json()["access_token"])
        return self._token

    def _check(self, response: Any) -> None:
        if response.status_code >= 400:
            request = response.request
            raise AirflowApiError(
                f"{request.method} {request.url} -> {response.status_code}: {response.text[:500]}"
            )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2<path>``; returns the decoded JSON body (or text for ``text/plain`` answers)."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        response = self._http.request(method, f"/api/v2{path}", headers=headers, **kwargs)
        self._check(response)
        if not response.content:  # e.g. DELETE's 204 No Content, which may still say application/json
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's details, or None while the dag-processor has not parsed it yet."""
        try:
            return dict(self.request("GET", f"/dags/{dag_id}"))
        except AirflowApiError as err:
            if "-> 404" in str(err):
                return None
            raise

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180.0) -> dict[str, Any]:
        """Wait until the DAG is parsed and known to the API server.

        Raises:
            AirflowApiError: when it is not there after ``timeout_s`` (a DAG import error, e.g.).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.dag(dag_id)
            if found is not None:
                return found
            time.sleep(1.0)
        errors = self.request("GET", "/importErrors")
        raise AirflowApiError(f"DAG {dag_id} not parsed after {timeout_s:.0f} s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        """Unpause the DAG (its runs are scheduled only while it is unpaused)."""
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def run_of_date(self, dag_id: str, date: str) -> dict[str, Any] | None:
        """The DAG run of logical date ``date`` (there is at most one), or None."""
        start = f"{date}T00:00:00Z"
        found = self.request(
            "GET", f"/dags/{dag_id}/dagRuns", params={"logical_date_gte": start, "logical_date_lte": start}
        )
        runs = found.get("dag_runs") or []
        return dict(runs[0]) if runs else None

    def start_night(self, dag_id: str, date: str, conf: dict[str, Any] | None = None) -> tuple[str, bool]:
        """Create the run of logical date ``date`` (data interval [D, D+1)), or clear the one that ran.

        A run of ``date`` still queued or running is followed as it is. With ``conf`` (params such as
        ``{"force_publish": true}``) a finished run of ``date`` is deleted and created again: a
        cleared run keeps the conf it was created with.

        Returns:
            The run id and whether an existing run was reused (cleared or already going).
        """
        existing = self.run_of_date(dag_id, date)
        if existing is not None and conf and existing["state"] not in ("queued", "running"):
            self.request("DELETE", f"/dags/{dag_id}/dagRuns/{existing['dag_run_id']}")
            existing = None
        if existing is None:
            body = {
                "dag_run_id": run_id_of(date),
                "logical_date": f"{date}T00:00:00Z",
                "data_interval_start": f"{date}T00:00:00Z",
                "data_interval_end": f"{add_days(date, 1)}T00:00:00Z",
                "conf": dict(conf or {}),
                "note": "created by reelrec run",
            }
            created = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
            return str(created["dag_run_id"]), False
        run_id = str(existing["dag_run_id"])
        if existing["state"] not in ("queued", "running"):
            self.request("POST", f"/dags/{dag_id}/dagRuns/{run_id}/clear", json={"dry_run": False})
        return run_id, True

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run."""
        return dict(self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The task instances of one run."""
        found = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return [dict(ti) for ti in found.get("task_instances") or []]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The log of one try of one task, as the UI shows it (read by the API server)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        body = self.request(
            "GET", path, params={"full_content": True}, headers={"Accept": "application/json"}
        )
        content = body.get("content") if isinstance(body, dict) else body
        if isinstance(content, list):  # structured lines: {"event": ..., "timestamp": ..., "level": ...}
            return "\n".join(
                str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content
            )
        return str(content)
