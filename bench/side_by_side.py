"""Side-by-side benchmark: the same lsbench workload against Workspace and against a real Label Studio.

    .venv/bin/python bench/side_by_side.py                          # N=100,000  M=2,000  C=8, one run
    .venv/bin/python bench/side_by_side.py --tasks 1000 --annotations 100 --runs 3
    .venv/bin/python bench/side_by_side.py --only workspace         # skip Label Studio

What it does, per run:

1. Workspace in production mode: a fresh PostgreSQL database (created on ``--pg-admin-url``'s server,
   dropped at the end), Redis (``--redis-url``; production mode needs it for sessions and the policy
   watcher), ``workspace migrate``, ``workspace create-tenant`` + ``create-token`` for the owner, then
   uvicorn with ``--ws-workers`` worker processes (uvloop + httptools, no access log).
2. ``lsbench.py`` against it (legacy ``Authorization: Token`` auth, ``--server-pid`` = the uvicorn master,
   so memory is the master plus its workers; PostgreSQL's own backends are not counted).
3. Label Studio via ``run-ls.sh start --fresh`` (its SQLite default, ``label-studio start``), the same
   ``lsbench.py`` workload and seed, then ``run-ls.sh stop``.
4. Both summaries and the ratios Workspace / Label Studio (throughputs: higher is better for Workspace;
   times and latencies: LS time / Workspace time, so again > 1 means Workspace is faster).

With ``--runs R`` it repeats 1–3 R times and reports medians. Raw lsbench JSON lands in ``--out-dir``.

``lsbench.py`` and ``run-ls.sh`` are found in ``--lsbench-dir`` (or ``$LSBENCH_DIR``), by default
``../shared/bench`` next to the repository. ``run-ls.sh install`` must have been run once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# summary keys: (label, key, kind) -- kind "rate" (higher is better) or "time" (lower is better)
METRICS = [
    ("import tasks/s", "import_tasks_per_s", "rate"),
    ("import s", "import_s", "time"),
    ("task list p50 ms", "list_p50_ms", "time"),
    ("task list p95 ms", "list_p95_ms", "time"),
    ("task get p50 ms", "get_p50_ms", "time"),
    ("task get p95 ms", "get_p95_ms", "time"),
    ("annotations /s", "ann_per_s", "rate"),
    ("annotation p95 ms", "ann_p95_ms", "time"),
    ("predictions /s", "pred_per_s", "rate"),
    ("prediction p95 ms", "pred_p95_ms", "time"),
    ("task list after ann. p95 ms", "list2_p95_ms", "time"),
    ("JSON export s", "export_s", "time"),
    ("export bytes", "export_bytes", None),
    ("export verified", "export_verified", None),
    ("server RSS after MB", "rss_after_mb", "time"),
    ("server RSS peak MB", "rss_peak_mb", "time"),
    ("server CPU s, annotations", "ann_server_cpu_s", "time"),
    ("server CPU s, predictions", "pred_server_cpu_s", "time"),
    ("total s", "total_s", "time"),
]

# the acceptance targets
TARGETS = [
    ("import throughput >= 10x LS", "import_tasks_per_s", "ratio", 10.0),
    ("annotation throughput >= 10x LS", "ann_per_s", "ratio", 10.0),
    ("prediction throughput >= 10x LS", "pred_per_s", "ratio", 10.0),
    ("JSON export time <= LS / 10", "export_s", "ratio", 10.0),
    ("task list p95 < 20 ms", "list_p95_ms", "abs", 20.0),
    ("task get p95 < 20 ms", "get_p95_ms", "abs", 20.0),
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode} before answering {url}")
        try:
            with opener.open(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"no answer from {url} within {timeout:.0f} s")


# --- Workspace -----------------------------------------------------------------------------------


def asgi_app():  # type: ignore[no-untyped-def]
    """uvicorn ``--factory`` entry point for each worker process (settings from WORKSPACE_* env)."""
    from workspace.app import create_app
    from workspace.config import load_settings
    from workspace.runtime import build_runtime

    settings = load_settings()
    return create_app(settings, runtime=build_runtime(settings, watch_policy=True))


class Workspace:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.dbname = f"ws_sbs_{os.getpid()}_{secrets.token_hex(3)}"
        base = args.pg_admin_url.rsplit("/", 1)[0]
        self.env = {
            **os.environ,
            "WORKSPACE_DATABASE_URL": f"{base}/{self.dbname}",
            "WORKSPACE_REDIS_URL": args.redis_url,
            "WORKSPACE_SECRET_KEY": secrets.token_urlsafe(48),
            "WORKSPACE_DATA_DIR": str(work / "ws-data"),
            "WORKSPACE_JOBS_NAMESPACE": f"sbs-{self.dbname}",
            "WORKSPACE_PUBLIC_URL": f"http://127.0.0.1:{args.ws_port}",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.created_db = False

    def _cli(self, *argv: str) -> str:
        r = subprocess.run([sys.executable, "-m", "workspace.cli", *argv], env=self.env, capture_output=True,
                           text=True, cwd=REPO)
        if r.returncode != 0:
            raise SystemExit(f"workspace {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def start(self) -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.args.pg_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.dbname}"'))
        admin.dispose()
        self.created_db = True
        self._cli("migrate")
        email = "owner@bench.example"
        self._cli("create-tenant", "bench", "--name", "Bench", "--owner-email", email,
                  f"--owner-password={secrets.token_urlsafe(16)}")  # "=": a random value may begin with "-"
        self.token = self._cli("create-token", "--tenant", "bench", "--email", email,
                               "--name", "lsbench").strip().splitlines()[-1].strip()
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "side_by_side:asgi_app",
               "--app-dir", str(Path(__file__).resolve().parent),
               "--host", "127.0.0.1", "--port", str(self.args.ws_port),
               "--workers", str(self.args.ws_workers), "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "warning"]
        self.log = open(self.work / "workspace.log", "wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
                                     start_new_session=True)
        wait_http(f"http://127.0.0.1:{self.args.ws_port}/healthz", self.proc)
        time.sleep(1.0)  # let every worker finish booting, not just the first one

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self.created_db:
            from sqlalchemy import create_engine, text

            admin = create_engine(self.args.pg_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)'))
            admin.dispose()
            self.created_db = False


# --- Label Studio --------------------------------------------------------------------------------


class LabelStudio:
    def __init__(self, args: argparse.Namespace) -> None:
        self.script = str(Path(args.lsbench_dir) / "run-ls.sh")
        self.pid = 0
        self.token = ""
        self.base = ""

    def start(self) -> None:
        r = subprocess.run(["bash", self.script, "start", "--fresh"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"run-ls.sh start failed:\n{r.stdout}\n{r.stderr}")
        line = r.stdout.strip().splitlines()[-1]
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        self.pid, self.token, self.base = int(fields["PID"]), fields["TOKEN"], fields["BASE"]

    def stop(self) -> None:
        subprocess.run(["bash", self.script, "stop"], capture_output=True, text=True)


# --- lsbench -------------------------------------------------------------------------------------


def lsbench_copy(args: argparse.Namespace, out_dir: Path) -> Path:
    """lsbench.py with its label config's ``showInLine`` spelled ``showInline`` (Label Studio's documented
    attribute). Label Studio ignores attributes it does not know; Workspace validates configs strictly and
    rejects the misspelling, so both servers get the corrected config and the same workload."""
    src = (Path(args.lsbench_dir) / "lsbench.py").read_text()
    dst = out_dir / "lsbench_patched.py"
    dst.write_text(src.replace('showInLine="true"', 'showInline="true"'))
    return dst


def run_lsbench(args: argparse.Namespace, label: str, base: str, token: str, pid: int, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(args.lsbench_script), "--base-url", base, "--token", token,
           "--auth-scheme", "Token", "--tasks", str(args.tasks), "--annotations", str(args.annotations),
           "--concurrency", str(args.concurrency), "--server-pid", str(pid), "--out", str(out),
           "--page-samples", "0", "--seed", str(args.seed), "--label", label,
           "--stage-timeout", str(args.stage_timeout)]
    if args.keepalive:
        cmd.append("--keepalive")
    log(f"{label}: lsbench N={args.tasks} M={args.annotations} C={args.concurrency} (load {loadavg()})")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not out.exists():
        raise SystemExit(f"lsbench against {label} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    res = json.loads(out.read_text())
    summary = res["summary"]
    summary["load_after"] = loadavg()
    for stage in ("import", "list", "annotations", "predictions", "export"):
        info = res.get(stage, {})
        codes = {**info.get("status_codes", {}), **info.get("list_page", {}).get("status_codes", {})}
        if any(str(k) not in ("200", "201") for k in codes) or info.get("status") not in (None, 200):
            log(f"{label}: {stage} answered {codes or info.get('status')}: {str(info.get('error', ''))[:300]}")
    log(f"{label}: {json.dumps(summary)}")
    return summary


# --- report --------------------------------------------------------------------------------------


def median(values: list[Any]) -> Any:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return values[0] if values else None
    return round(statistics.median(nums), 2)


def ratio(ws: Any, ls: Any, kind: str | None) -> float | None:
    if not isinstance(ws, (int, float)) or not isinstance(ls, (int, float)) or kind is None:
        return None
    if kind == "rate":
        return round(ws / ls, 1) if ls else None
    return round(ls / ws, 1) if ws else None


def report(ws_runs: list[dict[str, Any]], ls_runs: list[dict[str, Any]]) -> str:
    ws = {k: median([r.get(k) for r in ws_runs]) for _, k, _ in METRICS} if ws_runs else {}
    ls = {k: median([r.get(k) for r in ls_runs]) for _, k, _ in METRICS} if ls_runs else {}
    n = max(len(ws_runs), len(ls_runs))
    lines = [f"{'metric' + (' (median of %d)' % n if n > 1 else ''):34} {'Workspace':>12} {'Label Studio':>13} "
             f"{'WS vs LS':>9}"]
    for label, key, kind in METRICS:
        w, s = ws.get(key), ls.get(key)
        r = ratio(w, s, kind)
        lines.append(f"{label:34} {str(w if w is not None else '-'):>12} {str(s if s is not None else '-'):>13} "
                     f"{(str(r) + 'x') if r is not None else '':>9}")
    lines.append("")
    lines.append("targets:")
    for label, key, how, bound in TARGETS:
        w = ws.get(key)
        if how == "abs":
            ok = isinstance(w, (int, float)) and w < bound
            lines.append(f"  {'PASS' if ok else 'MISS'}  {label}: {w} ms")
        else:
            kind = next(k for _, kk, k in METRICS if kk == key)
            r = ratio(w, ls.get(key), kind)
            ok = r is not None and r >= bound
            lines.append(f"  {'PASS' if ok else ('MISS' if r is not None else 'n/a ')}  {label}: "
                         f"{r if r is not None else '-'}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000, help="N tasks imported")
    ap.add_argument("--annotations", type=int, default=2_000, help="M annotations and M predictions")
    ap.add_argument("--concurrency", type=int, default=8, help="C concurrent clients for annotations/predictions")
    ap.add_argument("--runs", type=int, default=1, help="repeat and report medians")
    ap.add_argument("--only", choices=["both", "workspace", "labelstudio"], default="both")
    ap.add_argument("--lsbench-dir", default=os.environ.get("LSBENCH_DIR", str(REPO.parent / "shared" / "bench")),
                    help="folder with lsbench.py and run-ls.sh (default $LSBENCH_DIR or ../shared/bench)")
    ap.add_argument("--pg-admin-url", default=os.environ.get(
        "WORKSPACE_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL URL allowed to CREATE/DROP DATABASE; the bench database lives on the same server")
    ap.add_argument("--redis-url", default=os.environ.get("WORKSPACE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"))
    ap.add_argument("--ws-port", type=int, default=8765)
    ap.add_argument("--ws-workers", type=int, default=2, help="uvicorn worker processes for Workspace")
    ap.add_argument("--keepalive", action="store_true", help="lsbench reuses connections (default: one per request)")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--stage-timeout", type=float, default=1200.0)
    ap.add_argument("--out-dir", default=None, help="where the raw lsbench JSON goes (default: a temp folder)")
    args = ap.parse_args(argv)

    lsb = Path(args.lsbench_dir)
    if not (lsb / "lsbench.py").is_file() or (args.only != "workspace" and not (lsb / "run-ls.sh").is_file()):
        raise SystemExit(f"lsbench.py / run-ls.sh not found in {lsb}: pass --lsbench-dir or set LSBENCH_DIR")
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="side-by-side-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"cores {os.cpu_count()}, load {loadavg()}, raw results in {out_dir}")
    args.lsbench_script = lsbench_copy(args, out_dir)

    ws_runs: list[dict[str, Any]] = []
    ls_runs: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        if args.only in ("both", "workspace"):
            work = Path(tempfile.mkdtemp(prefix="ws-sbs-"))
            ws = Workspace(args, work)
            try:
                log(f"run {run}: starting Workspace ({args.ws_workers} workers, PostgreSQL {ws.dbname})")
                ws.start()
                ws_runs.append(run_lsbench(args, f"workspace-run{run}", f"http://127.0.0.1:{args.ws_port}",
                                           ws.token, ws.pid, out_dir / f"workspace-run{run}.json"))
            finally:
                ws.stop()
                if (work / "workspace.log").exists():
                    shutil.copy(work / "workspace.log", out_dir / f"workspace-run{run}.log")
                shutil.rmtree(work, ignore_errors=True)
        if args.only in ("both", "labelstudio"):
            ls = LabelStudio(args)
            try:
                log(f"run {run}: starting Label Studio (run-ls.sh start --fresh)")
                ls.start()
                ls_runs.append(run_lsbench(args, f"labelstudio-run{run}", ls.base, ls.token, ls.pid,
                                           out_dir / f"labelstudio-run{run}.json"))
            finally:
                ls.stop()
    text = report(ws_runs, ls_runs)
    print()
    print(f"N={args.tasks} M={args.annotations} C={args.concurrency} runs={args.runs} "
          f"Workspace workers={args.ws_workers}; load average now {loadavg()}")
    print(text)
    (out_dir / "summary.json").write_text(json.dumps({"workspace": ws_runs, "labelstudio": ls_runs,
                                                      "report": text}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
