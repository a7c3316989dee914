"""A real `mlflow server` on 127.0.0.1 over the tracking database of a real smoke run, queried through
its REST API as a user's script or the MLflow UI would: a child run found by its method."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(smoke_home, tmp_path):
    port = _free_port()
    log = open(tmp_path / "mlflow-server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{smoke_home / 'mlflow.db'}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'mlflow-server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: the group this test started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _get(url: str, endpoint: str, **query) -> dict:
    with urllib.request.urlopen(f"{url}{endpoint}?{urllib.parse.urlencode(query)}", timeout=30) as r:
        return json.load(r)


def _post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def test_a_child_run_is_found_by_its_method_with_seed_recipe_and_dataset(server):
    exp = _get(server, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="smoke")["experiment"]
    found = _post(server, "/api/2.0/mlflow/runs/search",
                  {"experiment_ids": [exp["experiment_id"]], "filter": "params.method = 'aggregated-lld'"})["runs"]
    assert len(found) == 1  # smoke: one seed, one τ
    run = found[0]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert params["seed"] == "0" and params["method"] == "aggregated-lld"
    assert params["tau_setting"] == "1.0" and float(params["tau_resolved"]) == 1.0
    assert params["spec_name"] == "smoke" and len(params["spec_hash"]) >= 12 and len(params["corpus_hash"]) >= 12
    assert params["code_version"].startswith("0.")
    parent_id = tags["mlflow.parentRunId"]
    run_id = run["info"]["run_id"]

    files = _get(server, "/api/2.0/mlflow/artifacts/list", run_id=run_id, path="recipes")["files"]
    assert "recipes/recipe.json" in {f["path"] for f in files}
    inputs = run["inputs"]["dataset_inputs"]
    assert [i["dataset"]["name"] for i in inputs] == ["smoke-eval"]
    assert {"key": "mlflow.data.context", "value": "evaluation"} in inputs[0]["tags"]

    # the same filter on the spec's params finds every child (the UI does not hide them)
    kids = _post(server, "/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [exp["experiment_id"]], "filter": f"params.spec_hash = '{params['spec_hash']}' "
                                                                      f"and tags.mlflow.parentRunId = '{parent_id}'"})["runs"]
    assert len(kids) == 5
    # and the parent lists them
    parent = _get(server, "/api/2.0/mlflow/runs/get", run_id=parent_id)["run"]
    ptags = {t["key"]: t["value"] for t in parent["data"]["tags"]}
    assert ptags["lldmix.children"] == "5"
    pfiles = {f["path"] for f in _get(server, "/api/2.0/mlflow/artifacts/list", run_id=parent_id)["files"]}
    assert {"children.json", "children.md"} <= pfiles
