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
