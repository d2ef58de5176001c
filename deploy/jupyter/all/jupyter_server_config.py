# Jupyter server configuration of every server the class hub spawns (JUPYTER_CONFIG_PATH points here).
c = get_config()  # noqa: F821 (injected by traitlets)

# Kernels talk to their server over Unix sockets in the user's private runtime folder instead of TCP ports of
# 127.0.0.1: a class starting kernels at the same moment on one machine otherwise collides on the random ports
# ("Address already in use", measured with ten students), and no other user can even reach a kernel's sockets.
c.KernelManager.transport = "ipc"
