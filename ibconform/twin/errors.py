"""The twin's own exceptions."""

from ibconform.errors import IbconformError, UsageError


class ScenarioError(UsageError):
    """The scenario is malformed; the message names the file and the field."""


class TwinError(IbconformError):
    """The twin could not be brought up (or down); the message says which node and why."""
