"""A client for external ML backends speaking Label Studio's ML backend protocol.

* ``GET /health`` → 200 (``{"status": "UP", ...}``);
* ``POST /setup`` with ``{"project", "schema": label config, "hostname", "access_token", "model_version"}``
  → ``{"model_version": ...}``;
* ``POST /predict`` with ``{"tasks": [{"id", "data"}, ...], "label_config", "project", "params": {}}`` →
  ``{"results": [{"result": [...], "score", "model_version"}, ...]}`` (a bare list is accepted too),
  one entry per task, in order.

Every request goes through the guarded outbound client (no loopback, private or metadata address on
any hop unless the operator's policy allows it), with the backend's timeout as the total deadline and
a response-size cap. Any failure is a :class:`RemoteError` (a ServiceError: the job fails with its
message, it is not retried) whose message names the backend's URL and what went wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from workspace.lib.outbound import GuardedClient, OutboundError, OutboundPolicy
from workspace.tenancy.errors import ServiceError

__all__ = ["RemoteBackend", "RemoteError", "RemotePrediction", "DEFAULT_POLICY", "MAX_RESPONSE_BYTES",
           "DEFAULT_TIMEOUT", "MAX_TIMEOUT"]

MAX_RESPONSE_BYTES = 10 * 1024 * 1024  # one /predict answer (one batch of tasks)
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 300.0
DEFAULT_POLICY = OutboundPolicy(timeout=DEFAULT_TIMEOUT, connect_timeout=5.0, read_timeout=DEFAULT_TIMEOUT,
                                max_redirects=2, user_agent="Workspace-ML/1")


class RemoteError(ServiceError):
    """The backend is unreachable, slow, too big, or answered something that is not a prediction."""


@dataclass(frozen=True)
class RemotePrediction:
    result: Any
    score: float | None
    model_version: str


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"score {value!r} is not a number")
    return float(value)


class RemoteBackend:
    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, policy: OutboundPolicy | None = None) -> None:
        self.url = url.rstrip("/")
        base = policy or DEFAULT_POLICY
        timeout = max(0.5, min(float(timeout), MAX_TIMEOUT))
        self.timeout = timeout
        self.policy = replace(base, timeout=timeout, read_timeout=min(base.read_timeout, timeout),
                              connect_timeout=min(base.connect_timeout, timeout),
                              max_bytes=min(base.max_bytes, MAX_RESPONSE_BYTES))
        self.client = GuardedClient(self.policy)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        where = f"The ML backend at {self.url}"
        try:
            if method == "GET":
                answer = self.client.get(self.url + path)
            else:
                answer = self.client.post(self.url + path, json=body)
        except OutboundError as exc:
            raise RemoteError(f"{where} failed on {path}: {exc}.") from None
        if not answer.is_success:
            excerpt = answer.text[:200].strip()
            raise RemoteError(f"{where} answered HTTP {answer.status_code} on {path}"
                              + (f": {excerpt}" if excerpt else "") + ".")
        try:
            return answer.json() if answer.content.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise RemoteError(f"{where} answered {path} with something that is not JSON.") from None

    def health(self) -> dict[str, Any]:
        data = self._call("GET", "/health")
        return data if isinstance(data, dict) else {}

    def setup(self, project: str, label_config: str, model_version: str = "") -> str:
        """Tell the backend the project's label config; the model version it reports (or "")."""
        data = self._call("POST", "/setup", {"project": project, "schema": label_config, "hostname": "",
                                             "access_token": "", "model_version": model_version or None})
        version = data.get("model_version") if isinstance(data, dict) else None
        return str(version)[:120] if isinstance(version, (str, int, float)) and version != "" else ""

    def predict(self, tasks: list[dict[str, Any]], label_config: str, project: str) -> list[RemotePrediction]:
        """One prediction per task, in order; RemoteError if the answer is not shaped like that."""
        data = self._call("POST", "/predict", {"tasks": tasks, "label_config": label_config, "project": project,
                                               "params": {}})
        where = f"The ML backend at {self.url}"
        results = data.get("results") if isinstance(data, dict) else data
        if not isinstance(results, list):
            raise RemoteError(f"{where} answered /predict without a list of results "
                              '(expected {"results": [{"result": [...], "score": ..., "model_version": ...}]}).')
        if len(results) != len(tasks):
            raise RemoteError(f"{where} returned {len(results)} predictions for {len(tasks)} tasks; "
                              "it must return one per task, in order.")
        out: list[RemotePrediction] = []
        for index, item in enumerate(results):
            task_id = tasks[index].get("id")
            if isinstance(item, list):  # a bare result list
                item = {"result": item}
            if not isinstance(item, dict) or "result" not in item:
                raise RemoteError(f"{where}: prediction {index} (task {task_id}) is not an object with a \u201cresult\u201d.")
            try:
                score = _score(item.get("score"))
            except ValueError as exc:
                raise RemoteError(f"{where}: prediction {index} (task {task_id}): {exc}.") from None
            version = item.get("model_version")
            out.append(RemotePrediction(result=item["result"], score=score,
                                        model_version=str(version)[:120] if version not in (None, "") else ""))
        return out
