# JupyterHub configuration of the class on one machine (`make hub`, which runs `python -m deploy.hub`).
#
# The hub runs as root on 127.0.0.1. Users log in with their Linux password (PAMAuthenticator: the accounts are real
# Linux users made by `python -m deploy.accounts create`, so PAM is the authenticator that needs no other user
# database, and every file a student writes belongs to them). deploy/spawner.py's ClassSpawner (LocalProcessSpawner
# and a memory cgroup per server) starts each user's JupyterLab as that user (setuid), in their home (mode 700).
# Four services are managed by the hub and stop with it:
#   mlflow        the class's tracking server (basic-auth app: an account per user; everyone reads, each changes
#                 only what they created), on sqlite by default, PostgreSQL when MLOPS_MLFLOW_BACKEND says so;
#   mlops-bridge  nbgrader's formgrader: jupyterhub-singleuser as the instructor in the course directory, reached
#                 by the instructors' group (nbgrader's documented JupyterHub set-up; its name is the course id);
#   grading       `python -m autograder watch` in the course directory: every submission graded and its feedback
#                 released to that student within seconds. It runs as root (the sandbox's memory cgroup and tmpfs);
#   idle-culler   jupyterhub-idle-culler: a server unused for MLOPS_HUB_IDLE_TIMEOUT seconds is stopped.
#
# Settings come from the environment (deploy/hub.py sets them; defaults in brackets): MLOPS_HUB_STATE
# [/srv/mlops-bridge], MLOPS_HUB_PORT [8000], MLOPS_HUB_API_PORT [8081], MLOPS_PROXY_API_PORT [8001],
# MLOPS_MLFLOW_PORT [5050], MLOPS_FORMGRADER_PORT [9999], MLOPS_MLFLOW_BACKEND [sqlite in the state folder],
# MLOPS_GRADING_WORKERS [the machine's cores], MLOPS_HUB_ADMIN_TOKEN [none: no admin service], MLOPS_HUB_MEM_LIMIT
# [2G: each user's server and kernels, deploy/spawner.py], MLOPS_HUB_IDLE_TIMEOUT [3600 s; 0: never cull],
# MLOPS_HUB_ACTIVITY_INTERVAL [300 s: how often activity reaches the hub].
import json
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (injected by traitlets)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from deploy.accounts import COURSE_ID, ClassState  # noqa: E402

BIN = REPO / ".venv" / "bin"
STATE = ClassState(os.environ.get("MLOPS_HUB_STATE", "/srv/mlops-bridge"))
HUB_PORT = int(os.environ.get("MLOPS_HUB_PORT", "8000"))
MLFLOW_PORT = int(os.environ.get("MLOPS_MLFLOW_PORT", "5050"))
FORMGRADER_PORT = int(os.environ.get("MLOPS_FORMGRADER_PORT", "9999"))
MLFLOW_URI = f"http://127.0.0.1:{MLFLOW_PORT}"
IDLE_TIMEOUT = int(os.environ.get("MLOPS_HUB_IDLE_TIMEOUT", "3600"))  # 0: never stop idle servers
ACTIVITY_INTERVAL = int(os.environ.get("MLOPS_HUB_ACTIVITY_INTERVAL", "300"))
PATH = f"{BIN}:/usr/local/bin:/usr/bin:/bin"

credentials = json.loads(STATE.credentials_file.read_text())
accounts = credentials["users"]
instructors = sorted(name for name, record in accounts.items() if record["role"] == "instructor")
instructor = instructors[0]
course_dir = str(STATE.course_dir(instructor))

# --- the hub and its proxy ------------------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{HUB_PORT}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("MLOPS_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('MLOPS_PROXY_API_PORT', '8001'))}"
c.ConfigurableHTTPProxy.command = [str(REPO / "deploy" / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(STATE.hub / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE.hub / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE.hub / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# --- who logs in ----------------------------------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.JupyterHub.last_activity_interval = ACTIVITY_INTERVAL  # how often the hub reads the proxy's activity
c.Authenticator.allowed_users = set(accounts)
# No hub admins: an admin can open every student's server, which is exactly what students must not be able to do
# to each other; the instructor sees submissions through formgrader and the gradebook, not through their servers.
c.Authenticator.admin_users = set()

# --- each user's JupyterLab, as that user --------------------------------------------------------------------
c.JupyterHub.spawner_class = "deploy.spawner.ClassSpawner"  # LocalProcessSpawner + a memory cgroup per server
c.Spawner.mem_limit = os.environ.get("MLOPS_HUB_MEM_LIMIT", "2G")  # a student running lesson 01 peaks at 0.72 GB
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 180  # a 2-core machine starting many servers at once (measured: docs/deploy.md)
c.Spawner.http_timeout = 180
c.Spawner.environment = {
    "PATH": PATH,
    "JUPYTERHUB_ACTIVITY_INTERVAL": str(ACTIVITY_INTERVAL),  # how often a server tells the hub it is in use
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no "Downloading artifacts" bars in every lesson's outputs
    "MLFLOW_TRACKING_URI": MLFLOW_URI,
    "MLOPS_EXCHANGE": str(STATE.exchange),
}


def per_user_environment(spawner):
    """Each user's own MLflow credentials, in their server's environment only (readable by them and root)."""
    name = spawner.user.name
    record = json.loads(STATE.credentials_file.read_text())["users"][name]
    config = [str(REPO / "deploy" / "jupyter" / "all")]
    if record["role"] == "student":  # no formgrader or create-assignment tools in students' JupyterLab
        config.insert(0, str(REPO / "deploy" / "jupyter" / "student"))
    spawner.environment.update(
        {
            "MLFLOW_TRACKING_USERNAME": name,
            "MLFLOW_TRACKING_PASSWORD": record["mlflow_password"],
            "JUPYTER_CONFIG_PATH": os.pathsep.join(config),
        }
    )


c.Spawner.pre_spawn_hook = per_user_environment

# --- services -------------------------------------------------------------------------------------------------
mlflow_backend = os.environ.get("MLOPS_MLFLOW_BACKEND") or f"sqlite:///{STATE.mlflow / 'mlflow.db'}"
c.JupyterHub.services = [
    {
        "name": "mlflow",
        "command": [
            str(BIN / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            mlflow_backend,
            "--artifacts-destination",
            str(STATE.mlflow / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(MLFLOW_PORT),
            "--workers",
            "2",
        ],
        "cwd": str(STATE.mlflow),
        "environment": {
            "PATH": PATH,
            "MLFLOW_AUTH_CONFIG_PATH": str(STATE.auth_config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials["mlflow_secret_key"],
        },
    },
    {
        "name": COURSE_ID,  # nbgrader's course_list finds the formgrader by this name
        "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
        "command": [str(BIN / "jupyterhub-singleuser"), f"--port={FORMGRADER_PORT}"],
        "user": instructor,
        "oauth_no_confirm": True,  # the course's own service: no "Authorize access" page for the instructors
        "cwd": course_dir,
        "environment": {
            "PATH": PATH,
            "HOME": str(STATE.home(instructor)),
            "JUPYTERHUB_DEFAULT_URL": "/lab",
            "MLOPS_EXCHANGE": str(STATE.exchange),
            "JUPYTER_CONFIG_PATH": str(REPO / "deploy" / "jupyter" / "all"),
            "MLFLOW_TRACKING_URI": MLFLOW_URI,
        },
    },
    {
        "name": "grading",
        "command": [
            str(BIN / "python"),
            "-m",
            "autograder",
            "watch",
            *(["--workers", os.environ["MLOPS_GRADING_WORKERS"]] if os.environ.get("MLOPS_GRADING_WORKERS") else []),
        ],
        "cwd": course_dir,
        "environment": {"PATH": PATH, "HOME": "/root", "PYTHONDONTWRITEBYTECODE": "1"},
    },
]
c.JupyterHub.load_groups = {f"formgrade-{COURSE_ID}": {"users": instructors}}
c.JupyterHub.load_roles = [
    {
        "name": f"formgrade-{COURSE_ID}",
        "groups": [f"formgrade-{COURSE_ID}"],
        "scopes": [f"access:services!service={COURSE_ID}", "list:services", f"read:services!service={COURSE_ID}"],
    },
    # nbgrader's course_list extension asks the hub which services its user may reach
    {"name": "server", "scopes": ["inherit"]},
]
if IDLE_TIMEOUT > 0:
    # A server nobody used for IDLE_TIMEOUT seconds (no request, no kernel activity) is stopped; its files stay, and
    # the student starts it again by logging in. jupyterhub-idle-culler, JupyterHub's own service for this.
    c.JupyterHub.services.append(
        {
            "name": "idle-culler",
            "command": [
                str(BIN / "python"),
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={IDLE_TIMEOUT}",
                f"--cull-every={max(10, min(300, IDLE_TIMEOUT // 4))}",
            ],
            "environment": {"PATH": PATH},
        }
    )
    c.JupyterHub.load_roles.append(  # the scopes jupyterhub-idle-culler documents
        {
            "name": "idle-culler",
            "services": ["idle-culler"],
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        }
    )
if os.environ.get("MLOPS_HUB_ADMIN_TOKEN"):
    # For scripted set-up and measurement (tests, make bench-hub): start and stop servers, read users.
    c.JupyterHub.services.append({"name": "class-admin", "api_token": os.environ["MLOPS_HUB_ADMIN_TOKEN"]})
    c.JupyterHub.load_roles.append(
        {
            "name": "class-admin",
            "services": ["class-admin"],
            "scopes": ["admin:users", "admin:servers", "list:services", "read:services"],
        }
    )
