"""A small client for tests of the Label Studio–compatible API (through the app's test client, with
one member's legacy token), and the label config and result those tests share."""

from __future__ import annotations

from typing import Any

CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
</View>"""
RESULT = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}]


class Api:
    """Calls as one token holder; a call answering outside 2xx (or not ``status``) fails the test."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Token {token}"}

    def __call__(self, method: str, url: str, body: Any = None, status: int | None = None) -> Any:
        r = self.client.request(method, url, json=body, headers=self.headers)
        assert r.status_code < 300 if status is None else r.status_code == status, (method, url, r.status_code, r.text)
        return r.json() if r.content else None

    def project(self, title: str = "Project") -> int:
        return self("POST", "/api/projects/", {"title": title, "label_config": CONFIG})["id"]

    def import_tasks(self, project_id: int, items: list[Any]) -> list[int]:
        return self("POST", f"/api/projects/{project_id}/import?return_task_ids=true", items)["task_ids"]

    def create_task(self, project_id: int, body: str) -> dict[str, Any]:
        return self("POST", "/api/tasks/", {"project": project_id, "data": {"text": body}}, status=201)
