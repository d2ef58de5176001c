"""Ports on a machine shared by a JupyterHub class: each student's own block, the notebook's variables moved, the
MLflow UI of a store that is a tracking server."""

import http.server
import threading

import pytest

from mlops_helpers import lessons, ports
from mlops_helpers.exceptions import TrackingError
from mlops_helpers.serving import MlflowUI

HUB = {"JUPYTERHUB_USER": "ada"}


def test_the_course_ports_become_a_students_own_block_on_a_shared_machine():
    assert [ports.class_port(p, uid=1003, environ=HUB) for p in (5001, 5002, 5003)] == [20031, 20032, 20033]
    # off a hub, ports are the course's plan
    assert ports.class_port(5001, uid=1003, environ={}) == 5001
    # ports outside the plan (a free port a test injected, one the student chose) are kept; so is a moved one
    assert ports.class_port(41234, uid=1003, environ=HUB) == 41234
    assert ports.class_port(5000, uid=1003, environ=HUB) == 5000
    assert ports.class_port(20031, uid=1003, environ=HUB) == 20031
    # a class of consecutive accounts: no two students share a port, and none leaves the block's range
    blocks = [{ports.class_port(p, uid=uid, environ=HUB) for p in ports.COURSE_PORTS} for uid in range(1000, 2000)]
    every = set().union(*blocks)
    assert len(every) == 1000 * len(ports.COURSE_PORTS)
    assert min(every) > ports.CLASS_PORT_BASE and max(every) < 30000 < 32768  # below the ephemeral range


def test_a_notebooks_port_variables_become_the_students_own():
    namespace = {"port": 5001, "ui_port": 5002, "n_requests": 300, "start_ui": True}
    changed = ports.personalise_notebook_ports(namespace, environ=HUB)
    own = ports.class_port(5001, environ=HUB)
    assert changed == {"port": (5001, own), "ui_port": (5002, own + 1)}
    assert namespace == {"port": own, "ui_port": own + 1, "n_requests": 300, "start_ui": True}
    assert ports.personalise_notebook_ports(namespace, environ=HUB) == {}  # a cell run twice
    untouched = {"port": 5001}
    assert ports.personalise_notebook_ports(untouched, environ={}) == {} and untouched == {"port": 5001}
    assert ports.personalise_notebook_ports(environ=HUB) == {}  # outside a notebook: nothing to change


def test_ui_instructions_name_the_students_own_port_on_a_shared_machine(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    own = ports.class_port(5002)
    assert own != 5002
    assert lessons.ui_instructions("sqlite:////home/ada/mlflow.db", page="#/models/m").splitlines() == [
        f"mlflow ui --backend-store-uri sqlite:////home/ada/mlflow.db --port {own}",
        f"then open http://127.0.0.1:{own}/#/models/m",
    ]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_the_ui_of_a_tracking_server_is_the_server_itself_nothing_started():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/"
        with MlflowUI(uri, port=5002) as ui:
            assert ui.url == uri.rstrip("/") and ui.process is None and ui.ready_seconds is not None
            assert ui.command_line == f"nothing: the tracking server {ui.url} serves the UI itself"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(TrackingError, match="no MLflow tracking server answers"):
        MlflowUI(uri).start()
