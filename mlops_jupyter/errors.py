"""One exception root for everything a user can get wrong or meet.

Every message is one line that says what went wrong and, where it helps, what to do.
The CLI prints it as is, the magics raise it as a ``UsageError``, HTTP returns it as 4xx.
"""


class MlopsError(Exception):
    """Root of every error mlops-jupyter raises on purpose."""


class InvalidInput(MlopsError, ValueError):
    """A name, value, URL, filter or argument that cannot be accepted."""


class NotFound(MlopsError, LookupError):
    """An experiment, run, model, version, alias or artifact that does not exist."""


class AlreadyExists(MlopsError):
    """A registration that would duplicate an existing object; ``version`` names the existing one."""

    def __init__(self, message, version=None):
        super().__init__(message)
        self.version = version


class GateFailed(MlopsError):
    """A promotion refused by one of its gates; the registry is unchanged."""

    def __init__(self, message, verdicts=()):
        super().__init__(message)
        self.verdicts = list(verdicts)


class IntegrityError(MlopsError):
    """Stored bytes that do not match their recorded hash, or a missing artifact file."""


class NoActiveRun(MlopsError):
    """A logging call made with no run active and no run given."""


class StepFailed(MlopsError):
    """A pipeline step raised; the message names the step, its notebook cell and the error."""

    def __init__(self, message, step=None, cell=None):
        super().__init__(message)
        self.step = step
        self.cell = cell
