"""Errors that deepsep reports to users as one clear line."""


class DeepsepError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


class AudioError(DeepsepError):
    """An input file that cannot be read, is empty, or holds NaN/inf samples."""


class ModelError(DeepsepError):
    """A model that is unknown, missing, unverified or inconsistent."""


class UsageError(DeepsepError):
    """Options that cannot go together (or with the model): the CLI exits with status 2 before any work."""
