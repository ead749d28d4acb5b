"""The web UIs as a person uses them, in headless Chromium (Debian's ``chromium`` driven by Playwright).

One ``dagster dev`` and one MLflow server run on loopback over a throw-away copy of the repository
(its own DAGSTER_HOME, data, DVC remote and MLflow store). The tests click through the asset graph,
materialize ``pose_bank``, read its metadata (preview, MLflow link, DVC hash), compare the MLflow
runs of two materializations, and backfill the control-render shards from the UI (the daemon
launches one run per shard; each run steps through the multiprocess executor).
Screenshots land in ``test-artifacts/web_ui/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestration.env import LOCAL_INSTANCE
from orchestration.ui import start_dagster, start_mlflow, stop, wait_code_loaded, wait_http
from tests.helpers.repo import REPO, make_repo_copy

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts" / "web_ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
RUN_TIMEOUT = 300.0


def _browser_or_skip() -> None:
    """CI installs Chromium and sets PD_REQUIRE_BROWSER=1, so there a missing browser fails."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (make setup installs it)"
    else:
        problem = "" if Path(CHROMIUM).exists() else "no chromium (Debian: apt-get install chromium)"
    if problem:
        if os.environ.get("PD_REQUIRE_BROWSER"):
            pytest.fail(problem)
        pytest.skip(problem)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    root: Path
    dagster: str
    mlflow: str
    logs: Path
    links: list[tuple[str, str]] = field(default_factory=list)  # (Dagster run, its MLflow link) off asset pages

    def gql(self, query: str, **variables: object) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        req = urllib.request.Request(f"{self.dagster}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            out = json.load(r)
        assert "errors" not in out, out
        return out["data"]

    def run_status(self, run_id: str) -> str:
        data = self.gql("query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id)
        return data["runOrError"].get("status", "NOT_FOUND")

    def wait_run(self, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.run_status(run_id)
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1.0)
        return "TIMEOUT"

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("*.log")))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    _browser_or_skip()
    base = tmp_path_factory.mktemp("web_ui")
    root, env = make_repo_copy(base)
    # The instance `make setup` creates: at most two runs at once (a backfill queues the rest).
    (root / "dagster_home" / "dagster.yaml").write_text(LOCAL_INSTANCE)
    dport, mport = free_port(), free_port()
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        PD_MLFLOW_ARTIFACT_ROOT=(root / "mlflow" / "artifacts").as_uri(),
        PD_MLFLOW_UI_URL=f"http://127.0.0.1:{mport}",
    )
    logs = base / "logs"
    logs.mkdir()
    dagster = start_dagster(dport, log=logs / "dagster.log", cwd=root, env=env)
    mlflow = start_mlflow(mport, log=logs / "mlflow.log", tracking_uri=env["MLFLOW_TRACKING_URI"],
                          artifact_root=env["PD_MLFLOW_ARTIFACT_ROOT"], env=env)  # fmt: skip
    s = Stack(root, f"http://127.0.0.1:{dport}", f"http://127.0.0.1:{mport}", logs)
    try:
        assert wait_http(f"{s.dagster}/server_info", 120, dagster), s.log_tail()
        assert wait_code_loaded(s.dagster, 120), s.log_tail()
        assert wait_http(f"{s.mlflow}/health", 120, mlflow), s.log_tail()
        yield s
    finally:
        stop(dagster, timeout=30)
        stop(mlflow, timeout=30)


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def open_dagster(page, url: str) -> None:
    """Open a Dagster page; the first visit shows a community sign-up dialog, which we skip."""
    page.goto(url, wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3000)
        skip.click()
    except Exception:  # noqa: BLE001 - the dialog is shown once per browser profile, if at all
        pass


def launched_id(page, kind: str) -> str:
    """The id in the 'Launched run' / backfill toast's View link."""
    link = page.locator(f"a[href*='/runs/{kind}']").filter(has_text="View").first
    link.wait_for(state="visible", timeout=60_000)
    return link.get_attribute("href").rstrip("/").split("/")[-1].split("?")[0]


def dvc_lock_hash(root: Path, stage: str) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return lock["stages"][stage]["outs"][0]["md5"]


def test_materialize_pose_bank_from_the_asset_graph(stack, page):
    open_dagster(page, f"{stack.dagster}/asset-groups")
    page.get_by_text("Global asset lineage").wait_for()
    page.keyboard.press("Alt+e")  # the graph's "Expand all groups" (its settings menu lists the shortcut)
    node = page.get_by_text("pose_bank", exact=True).last
    node.wait_for(state="visible")
    shot(page, "01-asset-graph")
    node.click()
    page.get_by_role("button", name="Materialize selected").click()
    run_id = launched_id(page, "")
    shot(page, "02-launched-from-graph")
    assert stack.wait_run(run_id) == "SUCCESS", stack.log_tail()

    open_dagster(page, f"{stack.dagster}/runs/{run_id}")
    page.get_by_text("Success", exact=True).first.wait_for()
    shot(page, "03-run-succeeded")

    # The asset's page shows what this materialization recorded.
    open_dagster(page, f"{stack.dagster}/assets/pose_bank")
    page.get_by_text("dvc_hash", exact=True).first.wait_for()
    text = page.locator("body").inner_text()
    assert (stack.root / "data" / "pose_bank" / "poses.parquet").is_file(), "the asset wrote outside the repo copy"
    digest = dvc_lock_hash(stack.root, "pose_bank")
    assert re.fullmatch(r"[0-9a-f]{32}\.dir", digest) and digest in text, f"DVC hash {digest} not on the page"
    num_poses = json.loads((stack.root / "data" / "pose_bank" / "summary.json").read_text())["num_poses"]
    assert re.search(rf"num_poses\s+.*\s+{num_poses}\s", text), "num_poses is not on the page"
    mlflow_link = page.locator(f"a[href^='{stack.mlflow}/#/experiments/']").first
    mlflow_link.wait_for()
    stack.links.append((run_id, mlflow_link.get_attribute("href")))
    shot(page, "04-asset-metadata")
    page.get_by_text("[Show Markdown]").first.click()
    preview = page.get_by_role("dialog").locator("img").first
    preview.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=preview.element_handle())
    page.wait_for_timeout(800)  # the dialog fades in
    shot(page, "05-asset-preview")
    page.keyboard.press("Escape")

    # A second materialization, from the asset page's own button: two MLflow runs to compare.
    page.locator("button", has_text="Materialize").first.click()
    second = launched_id(page, "")
    assert second != run_id
    assert stack.wait_run(second) == "SUCCESS", stack.log_tail()


def _experiment_id(stack: Stack, name: str) -> str:
    url = f"{stack.mlflow}/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)["experiment"]["experiment_id"]


def _dagster_runs(stack: Stack, asset: str) -> list[str]:
    data = stack.gql(
        """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
            assetMaterializations(limit: 20) { runId } } } }""",
        key={"path": [asset]},
    )
    return [m["runId"] for m in data["assetOrError"]["assetMaterializations"]]


def test_mlflow_compares_two_materializations(stack, page):
    runs = _dagster_runs(stack, "pose_bank")
    assert len(runs) >= 2, "needs the two materializations of the test before"
    exp = _experiment_id(stack, "pose_bank")
    page.goto(f"{stack.mlflow}/#/experiments", wait_until="load")
    page.get_by_text("Model training", exact=True).click()  # MLflow 3 opens on its GenAI view
    page.goto(f"{stack.mlflow}/#/experiments/{exp}/runs", wait_until="load")
    for run_id in runs[:2]:  # run names carry the Dagster run id
        page.get_by_text(f"pose_bank-{run_id[:8]}").first.wait_for()
    shot(page, "06-mlflow-runs")
    page.get_by_label("Select all runs").check()
    page.get_by_role("button", name="Compare").click()
    page.get_by_text(re.compile(r"Comparing \d+ Runs")).wait_for()
    body = page.locator("body").inner_text()
    assert "Comparing 2 Runs" in body
    for run_id in runs[:2]:
        assert f"pose_bank-{run_id[:8]}" in body and run_id in body  # names and the dagster.run_id tags
    assert "pose_bank.num_poses" in body and "nn_dist_mm" in body  # params and metrics side by side
    shot(page, "07-mlflow-compare")

    # The link on the Dagster asset page opens that materialization's run.
    assert stack.links, "no MLflow link was read off the asset page"
    dagster_run, link = stack.links[0]
    page.goto(link, wait_until="load")
    page.get_by_text(f"pose_bank-{dagster_run[:8]}").first.wait_for()
    shot(page, "08-mlflow-run-from-asset-link")


def test_backfill_control_render_shards_from_the_ui(stack, page):
    from dagster import DagsterEventType, DagsterInstance

    if not _dagster_runs(stack, "pose_bank"):
        pytest.skip("needs pose_bank materialized by the first test")
    open_dagster(page, f"{stack.dagster}/assets/control_renders")
    page.locator("button", has_text="Materialize").first.click()
    page.get_by_role("button", name="All", exact=True).click()
    shot(page, "09-backfill-dialog")
    page.get_by_role("button", name="Launch backfill").click()
    backfill = launched_id(page, "b/")
    deadline = time.monotonic() + 2 * RUN_TIMEOUT
    query = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
        status numPartitions runs(limit: 20) { id status tags { key value } } } } }"""
    while time.monotonic() < deadline:
        info = stack.gql(query, id=backfill)["partitionBackfillOrError"]
        if info["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
            break
        time.sleep(2.0)
    open_dagster(page, f"{stack.dagster}/runs/b/{backfill}")
    shot(page, "10-backfill-done")
    assert info["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (info, stack.log_tail())
    runs = info["runs"]
    partitions = sorted(t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition")
    assert partitions == [f"shard-{i:06d}" for i in range(4)] and all(r["status"] == "SUCCESS" for r in runs)

    # Each run stepped through the multiprocess executor (a worker process per step).
    instance = DagsterInstance.from_config(str(stack.root / "dagster_home"))
    for r in runs:
        workers = instance.get_records_for_run(r["id"], of_type=DagsterEventType.STEP_WORKER_STARTING).records
        assert workers, f"run {r['id']} did not start step worker processes"
    # Every shard landed once, complete: no sample lost or duplicated across the parallel runs.
    out = stack.root / "data" / "control_renders"
    assert sorted(p.name for p in out.glob("shard-*.tar")) == [f"shard-{i:06d}.tar" for i in range(4)]
    manifest = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("manifest-*.parquet"))])
    per_shard = yaml.safe_load((stack.root / "params.yaml").read_text())["tiny"]["control_renders"]
    assert len(manifest) == 4 * per_shard["samples_per_shard"] and manifest["key"].is_unique
