"""A class on one machine: JupyterHub with real Linux accounts, nbgrader's shared exchange, grading on submit and
one MLflow tracking server with an account per student. ``make hub`` is the entry point (docs/deploy.md)."""
