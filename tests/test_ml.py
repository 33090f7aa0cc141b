"""Pre-annotation: the built-in classifier (trained on labeled work, retrained every N annotations), the
dictionary tagger, and an external backend on a real HTTP server on 127.0.0.1 — good answers stored;
down, slow, huge and invalid answers fail the job with a readable message and keep no prediction.
Plus tenant isolation, permissions, and a real `workspace worker` process on PostgreSQL + Redis."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from conftest import add_member, csrf_token, grant_project, login, make_tenant, post_form
from worker_process import worker_process
from workspace.audit.models import AuditEvent
from workspace.jobs.models import Job
from workspace.lib.outbound import OutboundPolicy
from workspace.ml.models import MLBackend
from workspace.workflow.annotations import validate_result
from workspace.workflow.label_config import parse_label_config
from workspace.workflow.models import Prediction, Project, Task

LOOPBACK = OutboundPolicy(allow_loopback=True, timeout=10.0, connect_timeout=3.0, read_timeout=5.0)
GOOD = ["great phone, love it", "excellent battery and great screen", "love the camera, excellent",
        "great value, works perfectly", "superb and great quality", "excellent, love this"]
BAD = ["terrible, broke after a day", "awful battery, terrible screen", "broken on arrival, awful",
       "worst purchase, terrible", "awful quality and broken", "terrible support, awful"]


# --- helpers -----------------------------------------------------------------------------------------


def _project(client, template: str = "text-classification", title: str = "Reviews") -> int:  # type: ignore[no-untyped-def]
    r = post_form(client, "/t/acme/projects", {"title": title, "template": template})
    assert r.status_code == 303, r.text[:300]
    return int(r.headers["location"].rsplit("/", 1)[1])


def _import(client, runtime, pid: int, texts: list[str]) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps([{"data": {"text": t}} for t in texts])
    r = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client), "confirm": "1"},
                    files={"file": (f"tasks-{uuid.uuid4().hex[:6]}.json", body, "application/json")})
    assert r.status_code == 303, r.text[:500]
    runtime.jobs.join()


def _task_ids(runtime, world, pid: int) -> list[int]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(Task.id).where(Task.project_id == pid).order_by(Task.id)))


def _label(client, pid: int, task_id: int, choice: str) -> None:  # type: ignore[no-untyped-def]
    result = [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
               "value": {"choices": [choice]}}]
    r = post_form(client, f"/t/acme/projects/{pid}/label", {"task": str(task_id), "result": json.dumps(result)})
    assert r.status_code in (200, 303), r.text[:500]


def _add(client, pid: int, **form) -> int:  # type: ignore[no-untyped-def]
    r = post_form(client, f"/t/acme/projects/{pid}/ml", form)
    assert r.status_code == 303, r.text[:800]
    page = client.get(f"/t/acme/projects/{pid}/ml").text
    return max(int(i) for i in re.findall(r'data-testid="ml-backend-(\d+)"', page))


def _backend(runtime, world, backend_id: int) -> MLBackend:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalars(select(MLBackend).where(MLBackend.id == backend_id)).one()


def _jobs(runtime, world, kind: str | None = None) -> list[Job]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        query = select(Job).order_by(Job.id)
        return [j for j in db.scalars(query) if kind is None or j.kind == kind]


def _predictions(runtime, world) -> list[Prediction]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(Prediction).order_by(Prediction.task_id, Prediction.id)))


def _prediction_counts(runtime, world, pid: int) -> list[int]:  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return list(db.scalars(select(Task.prediction_count).where(Task.project_id == pid).order_by(Task.id)))


def _run(client, runtime, pid: int, backend_id: int, **form) -> Job:  # type: ignore[no-untyped-def]
    r = post_form(client, f"/t/acme/projects/{pid}/ml/{backend_id}/predict", {"scope": "all", **form})
    assert r.status_code == 303, r.text[:500]
    runtime.jobs.join()
    return _jobs_of(runtime, client, "predict")[-1]


def _jobs_of(runtime, client, kind):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work() as db:
        from workspace.tenancy.models import Tenant
        tenant_id = db.scalars(select(Tenant.id).where(Tenant.slug == "acme")).one()
    with runtime.unit_of_work(tenant_id) as db:
        return [j for j in db.scalars(select(Job).order_by(Job.id)) if j.kind == kind]


def _train(client, runtime, pid: int, backend_id: int) -> Job:  # type: ignore[no-untyped-def]
    r = post_form(client, f"/t/acme/projects/{pid}/ml/{backend_id}/train")
    assert r.status_code == 303, r.text[:500]
    runtime.jobs.join()
    return _jobs_of(runtime, client, "ml_train")[-1]


@pytest.fixture
def world(client, runtime):  # type: ignore[no-untyped-def]
    w = make_tenant(runtime, "acme")
    login(client, w.owner)
    return w


# --- built-in classifier -------------------------------------------------------------------------------


def test_classifier_trains_on_labeled_tasks_and_predicts_choices_with_scores(client, runtime, world):
    pid = _project(client)
    _import(client, runtime, pid, GOOD + BAD + ["love it, great", "awful, terrible"])
    ids = _task_ids(runtime, world, pid)
    backend_id = _add(client, pid, kind="builtin_classifier", name="Sentiment model")
    assert _backend(runtime, world, backend_id).status == "untrained"

    # Too few labeled texts, then only one class: the training job fails and says what is missing.
    _label(client, pid, ids[0], "Positive")
    job = _train(client, runtime, pid, backend_id)
    assert job.status == "failed" and "at least 4" in job.message, job.message
    for tid in ids[1:4]:
        _label(client, pid, tid, "Positive")
    job = _train(client, runtime, pid, backend_id)
    assert job.status == "failed" and "Every labeled text so far is \u201cPositive\u201d" in job.message, job.message
    # Predicting with an untrained classifier is refused up front.
    r = post_form(client, f"/t/acme/projects/{pid}/ml/{backend_id}/predict", {"scope": "all"})
    assert r.status_code == 303
    assert "has not been trained yet" in client.get(f"/t/acme/projects/{pid}/ml").text

    for tid in ids[4:6]:
        _label(client, pid, tid, "Positive")
    for tid in ids[6:12]:
        _label(client, pid, tid, "Negative")
    job = _train(client, runtime, pid, backend_id)
    assert job.status == "succeeded", job.message
    assert job.result["examples"] == 12 and job.result["classes"] == {"Positive": 6, "Negative": 6}
    backend = _backend(runtime, world, backend_id)
    assert backend.model_version == "clf-1" and backend.trained_on == 12 and backend.status == "ready"

    job = _run(client, runtime, pid, backend_id)
    assert job.status == "succeeded", job.message
    predictions = _predictions(runtime, world)
    assert len(predictions) == len(ids)
    config = parse_label_config(_config(runtime, world, pid))
    by_task = {p.task_id: p for p in predictions}
    for p in predictions:
        assert p.model_version == "clf-1" and 0.5 <= p.score <= 1.0
        [region] = p.result
        assert region["type"] == "choices" and region["score"] == p.score
        validate_result(config, {"text": "x"}, p.result)
    assert by_task[ids[12]].result[0]["value"]["choices"] == ["Positive"]
    assert by_task[ids[13]].result[0]["value"]["choices"] == ["Negative"]
    assert _prediction_counts(runtime, world, pid) == [1] * len(ids)

    # Running again replaces the same model version's predictions (idempotent), never duplicates them.
    assert _run(client, runtime, pid, backend_id).status == "succeeded"
    assert len(_predictions(runtime, world)) == len(ids) and _prediction_counts(runtime, world, pid) == [1] * len(ids)

    # The labeling page starts from the suggestion.
    page = client.get(f"/t/acme/projects/{pid}/label?task={ids[12]}")
    assert page.status_code == 200 and 'data-testid="label-suggested"' in page.text

    # The run is audited through its job.
    with runtime.unit_of_work(world.tenant_id) as db:
        actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "job",
                                                                 AuditEvent.object_id == str(job.id))))
        assert any(a.endswith("queued") for a in actions) and any(a.endswith("succeeded") for a in actions), actions
        assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.object_type == "ml_backend")) >= 1


def _config(runtime, world, pid):  # type: ignore[no-untyped-def]
    with runtime.unit_of_work(world.tenant_id) as db:
        return db.scalars(select(Project.label_config).where(Project.id == pid)).one()


def test_classifier_retrains_every_n_new_annotations(client, runtime, world):
    pid = _project(client)
    _import(client, runtime, pid, GOOD + BAD)
    ids = _task_ids(runtime, world, pid)
    backend_id = _add(client, pid, kind="builtin_classifier", retrain_every="3")
    for tid in ids[:3]:
        _label(client, pid, tid, "Positive")
    runtime.jobs.join()
    [first] = _jobs(runtime, world, "ml_train")  # created by the third annotation's commit
    assert first.status == "failed" and "at least 4" in first.message  # too few so far: said clearly
    for tid in ids[6:8]:
        _label(client, pid, tid, "Negative")
    runtime.jobs.join()
    assert len(_jobs(runtime, world, "ml_train")) == 1  # 2 new since the last attempt: not yet
    _label(client, pid, ids[8], "Negative")
    runtime.jobs.join()
    jobs = _jobs(runtime, world, "ml_train")
    assert len(jobs) == 2 and jobs[-1].status == "succeeded", [(j.status, j.message) for j in jobs]
    backend = _backend(runtime, world, backend_id)
    assert backend.model_version == "clf-1" and backend.trained_on == 6
    with runtime.unit_of_work(world.tenant_id) as db:  # the automatic job is audited like any other
        events = list(db.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "job",
                                                                 AuditEvent.object_id == str(jobs[-1].id))))
    assert any(a.endswith("queued") for a in events) and any(a.endswith("succeeded") for a in events), events


def test_classifier_needs_a_choices_over_text(client, runtime, world):
    pid = _project(client, "image-classification", "Pictures")
    r = post_form(client, f"/t/acme/projects/{pid}/ml", {"kind": "builtin_classifier"})
    assert r.status_code == 422 and "needs a &lt;Choices&gt; control over a &lt;Text&gt;" in r.text


# --- built-in tagger ---------------------------------------------------------------------------------


NER_TEXTS = ["Alice flew from Paris to Berlin for Acme Corp on 2026-11-28.",
             "Nothing to see here.",
             "ACME CORP opened an office in paris; Parisian food is great."]


def test_tagger_produces_valid_spans_shown_as_suggestions(client, runtime, world):
    pid = _project(client, "named-entities", "People and places")
    _import(client, runtime, pid, NER_TEXTS)
    ids = _task_ids(runtime, world, pid)
    backend_id = _add(client, pid, kind="builtin_tagger", name="Gazetteer",
                      terms="Paris => LOC\nBerlin\tLOC\nacme corp => org\n# a comment\nAlice => PER",
                      patterns=r"\d{4}-\d{2}-\d{2} => MISC")
    job = _run(client, runtime, pid, backend_id)
    assert job.status == "succeeded", job.message
    assert job.result == {"tasks": 3, "predictions": 2, "model_versions": ["tagger-1"]}
    assert "1 had nothing to suggest" in job.message
    config = parse_label_config(_config(runtime, world, pid))
    predictions = {p.task_id: p for p in _predictions(runtime, world)}
    assert set(predictions) == {ids[0], ids[2]}
    spans = [(r["value"]["text"], r["value"]["labels"]) for r in predictions[ids[0]].result]
    assert spans == [("Alice", ["PER"]), ("Paris", ["LOC"]), ("Berlin", ["LOC"]), ("Acme Corp", ["ORG"]),
                     ("2026-11-28", ["MISC"])]
    # Whole words, any case: "paris" yes, "Parisian" no.
    assert [r["value"]["text"] for r in predictions[ids[2]].result] == ["ACME CORP", "paris"]
    for tid, p in predictions.items():
        assert p.score == 1.0 and p.model_version == "tagger-1"
        validate_result(config, {"text": NER_TEXTS[ids.index(tid)]}, p.result)
    assert _prediction_counts(runtime, world, pid) == [1, 0, 1]
    page = client.get(f"/t/acme/projects/{pid}/label?task={ids[0]}")
    assert 'data-testid="label-suggested"' in page.text and "Berlin" in page.text

    # New rules are a new model version: its predictions sit beside the old ones.
    r = post_form(client, f"/t/acme/projects/{pid}/ml/{backend_id}/update",
                  {"name": "Gazetteer", "terms": "Berlin => LOC", "patterns": ""})
    assert r.status_code == 303
    assert _backend(runtime, world, backend_id).model_version == "tagger-2"
    page = client.get(f"/t/acme/projects/{pid}/ml?ids={ids[0]}&ids={ids[2]}&state=all").text
    assert "The 2 selected tasks" in page and f'name="ids" value="{ids[2]}"' in page
    assert _run(client, runtime, pid, backend_id, scope="selected", ids=[str(ids[0])]).status == "succeeded"
    assert _prediction_counts(runtime, world, pid) == [2, 0, 1]


@pytest.mark.parametrize(("terms", "patterns", "message"), [
    ("Paris => City", "", "\u201cCity\u201d is not a label of this project"),
    ("Paris", "", "Terms, line 1: write a term, then a tab or"),
    ("", "", "Enter at least one term"),
    ("Paris => LOC", "([a-z] => LOC", "Patterns, line 1: '([a-z]' is not a valid regular expression"),
    ("Paris => LOC", r"\d* => MISC", "matches empty text"),
    ("Paris => LOC", "x" * 201 + " => MISC", "longer than 200 characters"),
])
def test_tagger_rules_are_checked_with_a_clear_message(client, runtime, world, terms, patterns, message):
    pid = _project(client, "named-entities", "NER")
    r = post_form(client, f"/t/acme/projects/{pid}/ml", {"kind": "builtin_tagger", "terms": terms,
                                                         "patterns": patterns})
    assert r.status_code == 422
    assert message in r.text.replace("&#39;", "'").replace("&#34;", '"'), r.text[-3000:]


def test_catastrophic_pattern_fails_the_job_and_keeps_nothing(client, runtime, world):
    pid = _project(client, "named-entities", "NER")
    _import(client, runtime, pid, ["Paris is nice", "x" * 3000])
    backend_id = _add(client, pid, kind="builtin_tagger", terms="Paris => LOC", patterns="(x+x+)+y => MISC")
    started = time.monotonic()
    job = _run(client, runtime, pid, backend_id)
    assert time.monotonic() - started < 20
    assert job.status == "failed" and "(x+x+)+y" in job.message and "backtracks" in job.message, job.message
    assert _predictions(runtime, world) == [] and _prediction_counts(runtime, world, pid) == [0, 0]


# --- external backend -----------------------------------------------------------------------------------


class FakeBackend:
    """A Label Studio ML backend on 127.0.0.1 whose /predict answer is scripted by ``mode``."""

    def __init__(self) -> None:
        self.mode = "good"
        self.requests: list[tuple[str, dict]] = []
        self.predict_calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append((self.path, {}))
                self._send(200, {"status": "UP", "model_class": "Fake"})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.requests.append((self.path, body))
                if self.path == "/setup":
                    return self._send(200, {"model_version": "fake-7"})
                fake.predict_calls += 1
                mode = fake.mode
                if mode == "slow":
                    time.sleep(3)
                if mode == "sleepy":
                    time.sleep(0.4)
                if mode == "huge":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    try:
                        for _ in range(12 * 16):
                            self.wfile.write(b" " * 65536)
                    except OSError:
                        pass
                    return None
                if mode == "500":
                    return self._send(500, {"error": "model crashed"})
                choice = "Positive"
                if mode == "invalid" or (mode == "invalid-later" and fake.predict_calls >= 2):
                    choice = "Maybe"
                results = [{"result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                                        "value": {"choices": [choice]}}], "score": 0.25 + (t["id"] % 5) / 10}
                           for t in body["tasks"]]
                if mode == "bare":
                    return self._send(200, results)
                if mode == "short":
                    results = results[1:]
                return self._send(200, {"results": results})

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    f = FakeBackend()
    yield f
    f.close()


def test_remote_backend_predictions_are_stored(client, runtime, world, fake):
    runtime.outbound_policy = LOOPBACK
    pid = _project(client)
    _import(client, runtime, pid, [f"review number {i}" for i in range(60)])  # two batches of 50 and 10
    backend_id = _add(client, pid, kind="remote", name="Team model", url=fake.url + "/", timeout="5")
    job = _run(client, runtime, pid, backend_id)
    assert job.status == "succeeded", job.message
    assert [path for path, _ in fake.requests] == ["/health", "/setup", "/predict", "/predict"]
    setup = fake.requests[1][1]
    assert "<Choices" in setup["schema"] and setup["project"].startswith(f"{pid}.")
    first = fake.requests[2][1]
    assert len(first["tasks"]) == 50 and set(first["tasks"][0]) == {"id", "data"} and "<View>" in first["label_config"]
    predictions = _predictions(runtime, world)
    assert len(predictions) == 60 and {p.model_version for p in predictions} == {"fake-7"}
    assert all(p.result[0]["id"] == "ml-0" and 0.25 <= p.score <= 0.65 for p in predictions)
    assert _prediction_counts(runtime, world, pid) == [1] * 60
    # A bare list is accepted too, and a retry of the same version replaces, never duplicates.
    fake.mode = "bare"
    assert _run(client, runtime, pid, backend_id).status == "succeeded"
    assert len(_predictions(runtime, world)) == 60


@pytest.mark.parametrize(("mode", "message"), [
    ("down", "could not be reached"),
    ("slow", "did not finish within the total limit of 1 s"),
    ("huge", "Workspace reads at most 10 MiB"),
    ("invalid", "does not fit the label config: Region 0: \u201cMaybe\u201d"),
    ("invalid-later", "does not fit the label config"),
    ("500", "answered HTTP 500 on /predict"),
    ("short", "returned 49 predictions for 50 tasks"),
])
def test_failing_remote_backend_fails_the_job_and_keeps_nothing(client, runtime, world, fake, mode, message):
    runtime.outbound_policy = LOOPBACK
    pid = _project(client)
    _import(client, runtime, pid, [f"review number {i}" for i in range(60)])
    url = fake.url
    if mode == "down":
        fake.close()
    fake.mode = mode
    backend_id = _add(client, pid, kind="remote", url=url, timeout="1")
    job = _run(client, runtime, pid, backend_id)
    expected = message.replace("\u201cMaybe\u201d", '"Maybe"')
    assert job.status == "failed" and expected in job.message, job.message
    if mode == "invalid-later":
        assert fake.predict_calls == 2  # the first batch was fine, and is rolled back with the rest
    assert _predictions(runtime, world) == [] and set(_prediction_counts(runtime, world, pid)) == {0}
    page = client.get(f"/t/acme/projects/{pid}/ml").text
    assert f'data-testid="ml-job-{job.id}" data-status="failed"' in page
    backend = _backend(runtime, world, backend_id)  # the backend shows what went wrong, after the rollback
    assert backend.status == "error" and backend.last_error.startswith(f"Job #{job.id} failed: ")
    if mode == "down":
        fake.server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # for the fixture's close()
        fake.thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
        fake.thread.start()


def test_cancelling_a_running_prediction_keeps_nothing(client, runtime, world, fake):
    runtime.outbound_policy = LOOPBACK
    fake.mode = "sleepy"
    pid = _project(client)
    _import(client, runtime, pid, [f"review number {i}" for i in range(1000)])  # 20 batches, ~0.4 s each
    backend_id = _add(client, pid, kind="remote", url=fake.url, timeout="5")
    assert post_form(client, f"/t/acme/projects/{pid}/ml/{backend_id}/predict", {"scope": "all"}).status_code == 303
    # (On SQLite the running job holds the write lock: read its id from the page, not a write transaction.)
    job_id = int(re.findall(r'data-testid="ml-job-(\d+)"', client.get(f"/t/acme/projects/{pid}/ml").text)[0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        live = runtime.job_board.progress(job_id)
        if live is not None and live.done >= 100 or fake.predict_calls >= 3:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"the prediction run did not get going (calls={fake.predict_calls})")
    calls = fake.predict_calls
    r = post_form(client, f"/t/acme/projects/{pid}/jobs/{job_id}/cancel")
    assert r.status_code == 303
    flash = client.get(f"/t/acme/projects/{pid}/jobs").text
    runtime.jobs.join()
    [job] = _jobs(runtime, world, "predict")
    assert job.status == "cancelled" and "nothing was kept" in job.message, (
        job.status, job.message, calls, fake.predict_calls, re.findall(r'class="flash[^"]*"[^>]*>([^<]*)', flash))
    assert fake.predict_calls < 20
    assert _predictions(runtime, world) == [] and set(_prediction_counts(runtime, world, pid)) == {0}


def test_remote_backend_on_a_loopback_address_is_refused_by_default(client, runtime, world, fake):
    pid = _project(client)
    _import(client, runtime, pid, ["one"])
    backend_id = _add(client, pid, kind="remote", url=fake.url, timeout="2")
    job = _run(client, runtime, pid, backend_id)
    assert job.status == "failed" and "Workspace only fetches public addresses" in job.message, job.message
    assert fake.requests == [] and _predictions(runtime, world) == []


def test_remote_settings_are_checked(client, runtime, world):
    pid = _project(client)
    for form, message in [({"url": "ftp://x.example"}, "full http:// or https:// URL"),
                          ({"url": "https://u:p@x.example"}, "Leave the user name and password out"),
                          ({"url": "https://x.example", "timeout": "0"}, "Timeout: enter a number of seconds")]:
        r = post_form(client, f"/t/acme/projects/{pid}/ml", {"kind": "remote", **form})
        assert r.status_code == 422 and message in r.text, r.text[-2000:]
    r = post_form(client, f"/t/acme/projects/{pid}/ml", {"kind": "magic"})
    assert r.status_code == 422 and "Choose a kind of backend" in r.text


# --- isolation and permissions ---------------------------------------------------------------------------


def test_another_tenants_backend_answers_404(client, runtime, world):
    pid = _project(client, "named-entities", "NER")
    backend_id = _add(client, pid, kind="builtin_tagger", terms="Zanzibar => LOC")
    other = make_tenant(runtime, "bravo")
    login(client, other.owner)
    r = post_form(client, "/t/bravo/projects", {"title": "Mine", "template": "named-entities"})
    other_pid = int(r.headers["location"].rsplit("/", 1)[1])
    for path in (f"/t/bravo/projects/{other_pid}/ml/{backend_id}/predict",
                 f"/t/bravo/projects/{other_pid}/ml/{backend_id}/delete",
                 f"/t/bravo/projects/{other_pid}/ml/{backend_id}/update",
                 f"/t/bravo/projects/{pid}/ml/{backend_id}/predict"):
        assert post_form(client, path, {"terms": "x => LOC"}).status_code == 404, path
    assert client.get(f"/t/bravo/projects/{pid}/ml").status_code == 404
    assert "Zanzibar" not in client.get(f"/t/bravo/projects/{other_pid}/ml").text
    assert _backend(runtime, world, backend_id).settings["terms"] == "Zanzibar => LOC"
    assert _jobs(runtime, world) == [j for j in _jobs(runtime, world) if j.kind == "import"]


def test_annotators_and_reviewers_cannot_configure_or_run_backends(client, runtime, world, make_client):
    pid = _project(client, "named-entities", "NER")
    _import(client, runtime, pid, ["Paris"])
    backend_id = _add(client, pid, kind="builtin_tagger", terms="Paris => LOC")
    annotator = add_member(runtime, world, "ann@acme.example", "annotator")
    grant_project(runtime, world, pid, "annotator", person=annotator)
    reviewer = add_member(runtime, world, "rev@acme.example", "reviewer")
    for person in (annotator, reviewer):
        other = make_client()
        login(other, person)
        assert other.get(f"/t/acme/projects/{pid}/ml").status_code in (403, 404)
        assert post_form(other, f"/t/acme/projects/{pid}/ml", {"kind": "builtin_tagger",
                                                             "terms": "Berlin => LOC"}).status_code in (403, 404)
        for action in ("predict", "train", "delete", "update"):
            r = post_form(other, f"/t/acme/projects/{pid}/ml/{backend_id}/{action}", {"scope": "all"})
            assert r.status_code in (403, 404), (person.email, action, r.status_code)
        assert 'data-testid="open-ml"' not in other.get(f"/t/acme/projects/{pid}").text
    assert [j.kind for j in _jobs(runtime, world)] == ["import"] or all(j.kind == "import" for j in _jobs(runtime, world))
    with runtime.unit_of_work(world.tenant_id) as db:
        assert db.scalar(select(func.count()).select_from(MLBackend)) == 1
    assert 'data-testid="open-ml"' in client.get(f"/t/acme/projects/{pid}").text


# --- a real worker process --------------------------------------------------------------------------------


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_worker_process_runs_a_predict_job(database, redis_url, tmp_path):
    """PostgreSQL + Redis: the web app queues the predict job, a real `workspace worker` process runs it."""
    from litestar.testing import TestClient

    from workspace.app import create_app

    with worker_process(database.url, redis_url, tmp_path) as run:
        settings, runtime, worker = run.settings, run.runtime, run.worker
        with TestClient(create_app(settings, runtime=runtime), base_url="http://testserver.local") as client:
            client.follow_redirects = False
            world = make_tenant(runtime, "acme")
            login(client, world.owner)
            pid = _project(client, "named-entities", "NER")
            texts = [f"Visit {'Paris' if i % 2 else 'Berlin'} number {i}" for i in range(1200)]
            r = client.post(f"/t/acme/projects/{pid}/import", data={"_csrf_token": csrf_token(client), "confirm": "1"},
                            files={"file": ("tasks.json", json.dumps([{"data": {"text": t}} for t in texts]),
                                            "application/json")})
            assert r.status_code == 303, r.text[:300]
            backend_id = _add(client, pid, kind="builtin_tagger", terms="Paris => LOC\nBerlin => LOC")
            r = post_form(client, f"/t/acme/projects/{pid}/ml/{backend_id}/predict", {"scope": "all"})
            assert r.status_code == 303
            deadline = time.monotonic() + 60
            job = None
            while time.monotonic() < deadline:
                assert worker.poll() is None, run.log_tail()
                jobs = _jobs(runtime, world, "predict")
                job = jobs[-1] if jobs else None
                if job is not None and job.status in ("succeeded", "failed"):
                    break
                time.sleep(0.3)
            assert job is not None and job.status == "succeeded", (
                job and (job.status, job.message), run.log_tail())
            assert job.result["predictions"] == 1200 and job.progress_done == 1200
            assert len(_predictions(runtime, world)) == 1200
