# nbgrader configuration of every server the class hub spawns (JUPYTER_CONFIG_PATH points here): the course id and
# the class's shared exchange. The instructor's course directory has its own nbgrader_config.py, read after this.
import os

c = get_config()  # noqa: F821 (injected by traitlets)
c.CourseDirectory.course_id = "mlops-bridge"
c.Exchange.root = os.environ["MLOPS_EXCHANGE"]
