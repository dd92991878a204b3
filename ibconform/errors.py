"""The project's own exceptions: each carries what a user needs to act on it."""


class IbconformError(Exception):
    """Base of every error ibconform raises on purpose."""


class UsageError(IbconformError):
    """Bad flags or a bad inventory: exit code 4, one line, no traceback."""


class InventoryError(UsageError):
    """The inventory file is malformed; the message names the file and the field, on one line.

    >>> str(InventoryError("inv.yaml: not valid YAML (bad\n  character)"))
    'inv.yaml: not valid YAML (bad character)'
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ParseError(IbconformError):
    """A tool's output could not be parsed; ``raw`` keeps the text for the report.

    >>> str(ParseError("no 'Configurations:' header", raw="garbage"))
    "no 'Configurations:' header"
    """

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


class TransportError(IbconformError):
    """A node could not be reached or did not answer; becomes that node's status error."""


class Unproven(AssertionError):
    """The evidence a check needs is missing or unreadable: the check fails with this message."""


class CannotJudge(Exception):
    """A check could not judge: it ends in **error** with this reason, never in a failure that blames the node."""


class NodeUnreachable(CannotJudge):
    """The node's facts were never collected: its checks end in error with this reason."""


class MissingEvidence(CannotJudge):
    """The bundle lacks a fact the check needs (written by an older ibconform, or cut short): the check ends
    in error naming the fact and why it is missing."""
