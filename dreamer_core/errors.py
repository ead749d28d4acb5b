"""Exceptions raised at the library boundary.

Each carries a message meant for the person who supplied the input: what is wrong, where, and
how to fix it. Orchestration shows these messages verbatim.
"""


class PipelineInputError(ValueError):
    """Base class for problems with user-supplied configuration or files."""


class ConfigError(PipelineInputError):
    """A value in params.yaml (or a run config) is missing, of the wrong type or out of range."""


class BodyModelFilesError(PipelineInputError):
    """A body-model folder is missing files or holds files in an unsupported format."""


class PoseFileError(PipelineInputError):
    """A pose file (e.g. an AMASS .npz) is unreadable or holds invalid arrays."""
