"""mlops_helpers.serving against real `mlflow models serve` / `mlflow ui` processes on 127.0.0.1 and free ports.

A server start takes many seconds, so one model server is shared by the module (``served``, started again for the
next test when a test stopped it); the tests that need their own process are marked ``full``, except the start-up
timeout, which stops its server at once.
"""

import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from leftover_servers import server_processes
from mlflow_state import reset_mlflow_globals
from mlops_helpers import tracking
from mlops_helpers.data import FEATURE_NAMES, split_iris
from mlops_helpers.exceptions import (
    BadPayloadError,
    ModelNotFoundError,
    PortInUseError,
    ServerDiedError,
    ServerNotRunningError,
    ServerTimeoutError,
)
from mlops_helpers.serving import (
    MlflowUI,
    ModelServer,
    free_port,
    group_members,
    measure_latency,
    port_is_free,
    to_payload,
)

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store holding the seed's model, logged and registered as ``iris-serve`` version 1."""
    folder = tmp_path_factory.mktemp("serving-store")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        tracking.setup_experiment(uri, "unit-serving")
        logged = tracking.train_and_log(registered_model_name="iris-serve")
        yield uri, logged, folder
    reset_mlflow_globals()


class SharedServer:
    """The module's model server, started on first use and started again after a test stopped it."""

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self.server: ModelServer | None = None

    def get(self) -> ModelServer:
        if self.server is None or not self.server.running:
            self.server = ModelServer("models:/iris-serve/1", tracking_uri=self.tracking_uri, port=free_port()).start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="module")
def shared_server(store):
    shared = SharedServer(store[0])
    yield shared
    shared.stop()


@pytest.fixture
def served(store, shared_server):
    """(the shared model server, running; the logged model it serves)."""
    return shared_server.get(), store[1]


@pytest.fixture
def listening_socket():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# ------------------------------------------------------------------------------------- without a server


def test_port_is_free_sees_a_listening_socket(listening_socket):
    assert not port_is_free(listening_socket)
    assert port_is_free(free_port())


def test_port_in_use_is_refused_before_launch_and_another_suggested(listening_socket, tmp_path):
    for server in (
        ModelServer(str(tmp_path), port=listening_socket, check_model=False),
        MlflowUI(f"sqlite:///{tmp_path}/x.db", port=listening_socket),
    ):
        with pytest.raises(PortInUseError, match=f"port {listening_socket} on 127.0.0.1 is already in use") as info:
            server.start()
        assert server.process is None  # nothing was launched
        assert info.value.suggestion != listening_socket and port_is_free(info.value.suggestion)
        assert f"port={info.value.suggestion}" in str(info.value)


def test_to_payload_builds_dataframe_split_and_records_and_refuses_the_rest():
    frame = split_iris(42).X_test.head(2)
    assert to_payload(frame) == {"dataframe_split": {"columns": FEATURE_NAMES, "data": frame.values.tolist()}}
    records = frame.to_dict(orient="records")
    assert to_payload(records) == {"dataframe_records": records}
    assert to_payload({"inputs": [[1]]}) == {"inputs": [[1]]}
    with pytest.raises(BadPayloadError, match="cannot build a payload from a str") as info:
        to_payload("5.1,3.5,1.4,0.2")
    assert all(f in str(info.value) for f in FORMATS)


def test_measure_latency_times_each_call_after_warmup():
    calls = []

    def call():
        calls.append(1)
        time.sleep(0.002)

    report = measure_latency(call, 50, warmup=3, progress=False)
    assert len(calls) == 53 and report.n == 50
    assert min(report.latencies_ms) >= 2.0  # each call is timed whole
    assert report.p50_ms <= report.p99_ms <= max(report.latencies_ms)
    assert report.seconds >= sum(report.latencies_ms) / 1000  # the timed calls only: warm-up calls came before
    assert report.requests_per_second == pytest.approx(report.n / report.seconds)
    assert report.requests_per_second <= 500  # no more than one 2 ms call finishes per 2 ms
    with pytest.raises(ValueError, match="at least 1"):
        measure_latency(lambda: None, 0)


def test_server_processes_finds_by_command_line_and_environment(monkeypatch):
    monkeypatch.setenv("SERVING_TEST_MARK", "yes")
    # A harmless stand-in whose command line contains "uvicorn", as the conftest check would see one.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "not-really-uvicorn"])
    try:
        found = server_processes(env={"SERVING_TEST_MARK": "yes"})
        assert proc.pid in [pid for pid, _ in found]
        assert proc.pid not in [pid for pid, _ in server_processes(env={"SERVING_TEST_MARK": "other"})]
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in [pid for pid, _ in server_processes(env={"SERVING_TEST_MARK": "yes"})]


def test_nonexistent_model_uri_is_refused_before_launch(store):
    uri, logged, _ = store
    cases = {
        "models:/iris-serve@champion": "alias champion not found",
        "models:/iris-serve/7": "not found",
        "models:/no-such-model/1": "no-such-model",
        f"runs:/{'0' * 32}/model": "not found",
        "/no/such/folder": "MLmodel does not exist",
    }
    for model_uri, reason in cases.items():
        server = ModelServer(model_uri, tracking_uri=uri)
        with pytest.raises(ModelNotFoundError, match=reason) as info:
            server.start()
        assert model_uri in str(info.value)
        assert server.process is None


def test_a_server_that_does_not_answer_in_time_is_stopped(store):
    uri, logged, _ = store
    server = ModelServer(logged.model_uri, tracking_uri=uri, startup_timeout=0.5)
    with pytest.raises(ServerTimeoutError, match="did not answer .* within 0 s|within 1 s"):
        server.start()
    assert server.process is not None and server.process.poll() is not None
    assert group_members(server.pgid) == []


def test_using_a_server_that_was_never_started_is_a_clear_error(store):
    uri, logged, _ = store
    with pytest.raises(ServerNotRunningError, match="never started"):
        ModelServer(logged.model_uri, tracking_uri=uri).predict(split_iris(42).X_test)


# ---------------------------------------------------------------------------------- the shared server


def test_server_is_ready_on_its_port(served):
    server, _ = served
    assert server.running and 0 < server.ready_seconds <= server.startup_timeout
    assert requests.get(f"http://127.0.0.1:{server.port}/ping", timeout=10).status_code == 200
    assert server.command_line.startswith("mlflow models serve -m models:/iris-serve/1 -h 127.0.0.1")
    assert f"-p {server.port} --env-manager local" in server.command_line
    assert not port_is_free(server.port)


def test_predictions_equal_the_models_own_predict(served):
    server, logged = served
    X_test = split_iris(42).X_test
    expected = logged.model.predict(X_test)
    assert (server.predict(X_test) == expected).all()
    assert (server.predict(X_test.to_dict(orient="records")) == expected).all()
    payloads = {
        "dataframe_split": {"dataframe_split": X_test.to_dict(orient="split")},
        "dataframe_records": {"dataframe_records": X_test.to_dict(orient="records")},
        "instances": {"instances": X_test.to_dict(orient="records")},
        "inputs": {"inputs": X_test.to_dict(orient="list")},
    }
    for name, payload in payloads.items():
        assert server.predict(payload).tolist() == expected.tolist(), name
    answer = server.invoke(X_test.to_csv(index=False), content_type="text/csv")
    assert answer.status_code == 200 and answer.json()["predictions"] == expected.tolist()


def test_mlflow1_payload_is_a_400_with_the_servers_message_and_the_formats(served):
    server, _ = served
    old = {"columns": FEATURE_NAMES, "data": [[5.1, 3.5, 1.4, 0.2]]}
    assert server.invoke(old).status_code == 400
    with pytest.raises(BadPayloadError) as info:
        server.predict(old)
    error = info.value
    assert error.status == 400
    assert "scoring protocol has changed in MLflow version 2.0" in error.server_message
    assert error.server_message in str(error)
    assert all(f in str(error) for f in FORMATS)


def test_unnamed_columns_are_a_400_explaining_the_schema(served):
    server, _ = served
    with pytest.raises(BadPayloadError, match="Model is missing inputs") as info:
        server.predict({"inputs": [[5.1, 3.5, 1.4, 0.2]]})
    assert info.value.status == 400 and "sepal_length" in info.value.server_message


def test_log_tail_shows_the_servers_own_log(served):
    server, _ = served
    assert "Uvicorn running on http://127.0.0.1:%d" % server.port in server.log_tail(50)
    assert "\r" not in server.log_tail(50)  # progress bars collapsed


def test_an_exception_inside_the_with_block_stops_the_whole_group(served):
    """It stops the shared server: a test after it gets a new one (last in the file, so that costs nothing)."""
    server, _ = served
    pgid = server.pgid
    assert len(group_members(pgid)) >= 2  # the mlflow CLI and its uvicorn
    with pytest.raises(RuntimeError, match="the app crashed"):
        with server:
            assert server.ping()
            raise RuntimeError("the app crashed")
    assert group_members(pgid) == []
    assert not server.running and port_is_free(server.port)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/ping", timeout=5)
    with pytest.raises(ServerNotRunningError, match="it was stopped"):
        server.predict(split_iris(42).X_test)
    server.stop()  # idempotent


# ------------------------------------------------------------------------------- own processes (slow)


@pytest.mark.full
def test_a_server_that_dies_at_start_raises_with_its_log_tail(tmp_path, store):
    uri, _, _ = store
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {not: [valid\n")  # passes the existence check, fails in the server
    server = ModelServer(str(broken), tracking_uri=uri)
    with pytest.raises(ServerDiedError, match="exited with code") as info:
        server.start()
    assert "last lines of its log" in str(info.value)
    assert info.value.log_tail and info.value.log_tail in str(info.value)
    assert "yaml" in info.value.log_tail.lower() or "MLmodel" in info.value.log_tail
    assert group_members(server.pgid) == []


@pytest.mark.full
def test_normal_exit_and_interpreter_exit_leave_nothing_running(store, tmp_path):
    uri, logged, folder = store
    with ModelServer(logged.model_uri, tracking_uri=uri) as server:
        pgid = server.pgid
        assert (
            server.predict(split_iris(42).X_test.head(3)).tolist()
            == logged.model.predict(split_iris(42).X_test.head(3)).tolist()
        )
    assert group_members(pgid) == [] and port_is_free(server.port)

    # A Python process that starts a server and exits without stopping it: the finalizer must stop the group.
    script = textwrap.dedent(f"""
        from mlops_helpers.serving import ModelServer
        server = ModelServer({logged.model_uri!r}, tracking_uri={uri!r}).start()
        print(server.pgid, server.port, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=folder)
    assert done.returncode == 0, done.stderr
    pgid, port = map(int, done.stdout.split()[-2:])
    assert group_members(pgid) == [] and port_is_free(port)


@pytest.mark.full
def test_mlflow_ui_starts_serves_the_store_and_stops(store):
    uri, logged, _ = store
    with MlflowUI(uri) as ui:
        pgid = ui.pgid
        page = requests.get(ui.url, timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        answer = requests.get(
            f"{ui.url}/api/2.0/mlflow/registered-models/get", params={"name": "iris-serve"}, timeout=30
        )
        assert answer.json()["registered_model"]["name"] == "iris-serve"
        run = requests.get(f"{ui.url}/api/2.0/mlflow/runs/get", params={"run_id": logged.run_id}, timeout=30)
        metrics = {m["key"]: m["value"] for m in run.json()["run"]["data"]["metrics"]}
        assert metrics["accuracy"] == logged.accuracy
        assert ui.command_line.startswith(f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1")
    assert group_members(pgid) == [] and port_is_free(ui.port)


def test_model_check_finds_logged_model_ids_and_leaves_mlflow_globals_alone(store, monkeypatch):
    """Regression: the check once pinned the caller's registry URI (and exported MLFLOW_REGISTRY_URI to every
    kernel started later), so models registered by later lessons went to a stale store."""
    import os

    import mlflow

    from mlops_helpers.serving import check_model_uri

    uri, logged, _ = store
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = mlflow.get_tracking_uri()
    check_model_uri(logged.model_uri, tracking_uri=uri)  # models:/m-<id>, a logged model
    assert logged.model_uri.startswith("models:/m-")
    with pytest.raises(ModelNotFoundError, match="m-00000000000000000000000000000000"):
        check_model_uri("models:/m-00000000000000000000000000000000", tracking_uri=uri)
    assert mlflow.get_tracking_uri() == before
    assert "MLFLOW_REGISTRY_URI" not in os.environ
