"""Every error raised by :mod:`mlops_helpers` derives from :class:`MlopsHelpersError`."""


class MlopsHelpersError(Exception):
    """Base class for errors raised by the course helpers."""


class TrackingError(MlopsHelpersError):
    """The tracking store could not be reached or does not hold what was asked for."""


class NotebookExecutionError(MlopsHelpersError):
    """A lesson notebook failed while being executed headless.

    Attributes name the notebook, the failing cell (index and execution count) and the error, so a
    CI log says exactly where to look.
    """

    def __init__(self, notebook, cell_index=None, exec_count=None, ename=None, evalue=None, output=None):
        self.notebook = str(notebook)
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue
        self.output = str(output) if output else None
        if cell_index is None:
            message = f"{self.notebook}: failed before any cell ran"
        else:
            message = f"{self.notebook}: cell {cell_index}"
            if exec_count is not None:
                message += f" (In [{exec_count}])"
            message += " failed"
        if ename:
            message += f": {ename}: {evalue}"
        if self.output:
            message += f" (partial output kept in {self.output})"
        super().__init__(message)


class DeprecatedApiError(MlopsHelpersError):
    """A lesson cell printed an MLflow deprecation warning it was not meant to print."""


class ProjectError(MlopsHelpersError):
    """The repository's MLflow Project (``MLproject``) cannot be found, or a project run did not report success."""


# --- serving and registry (mlops_helpers.serving, mlops_helpers.registry) ---

ACCEPTED_PAYLOAD_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class ServingError(MlopsHelpersError):
    """A model server or MLflow UI started by the helpers could not be started, reached or used."""


class PortInUseError(ServingError):
    """The port asked for is already taken on the host; nothing was launched."""

    def __init__(self, host, port, suggestion=None):
        self.host, self.port, self.suggestion = host, port, suggestion
        message = f"port {port} on {host} is already in use (another server, or an earlier one still running)"
        if suggestion:
            message += f"; try another port, e.g. port={suggestion}, which is free right now"
        super().__init__(message)


class ServerStartError(ServingError):
    """The server process did not become ready: it died, or it did not answer in time.

    ``log_tail`` holds the last lines the process wrote, which usually say why.
    """

    def __init__(self, message, log_tail="", log_path=None):
        self.log_tail = log_tail
        self.log_path = str(log_path) if log_path else None
        if log_tail:
            message += "\n--- last lines of its log ---\n" + log_tail
        super().__init__(message)


class ServerDiedError(ServerStartError):
    """The server process exited before it became ready."""


class ServerTimeoutError(ServerStartError):
    """The server process was still not ready when the start-up timeout ran out (it has been stopped)."""


class ServerNotRunningError(ServingError):
    """A request was made to a server that is stopped or no longer answers."""


class BadPayloadError(ServingError):
    """The scoring server rejected a request (HTTP 4xx); its own message is kept in ``server_message``."""

    accepted_formats = ACCEPTED_PAYLOAD_FORMATS

    def __init__(self, status, server_message, *, url=None):
        self.status, self.server_message, self.url = status, server_message, url
        formats = ", ".join(ACCEPTED_PAYLOAD_FORMATS)
        where = f" from {url}" if url else ""
        super().__init__(
            f"HTTP {status}{where}: the server rejected the payload. Its message: {server_message}\n"
            f"A JSON payload must be a dict with exactly one of the keys {formats} "
            f"(or a pandas DataFrame passed to predict(), sent as dataframe_split)."
        )


class ModelNotFoundError(ServingError):
    """The model URI does not point to a model in the tracking store / registry (checked before launching)."""


class RegistryError(MlopsHelpersError):
    """The model registry does not hold what a lesson asked for."""
