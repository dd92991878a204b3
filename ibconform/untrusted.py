"""Reading untrusted JSON (API objects): a field of the wrong type reads as empty, never raises."""


def d(value: object) -> dict:
    """``value`` if it is a mapping, else ``{}``."""
    return value if isinstance(value, dict) else {}


def lst(value: object) -> list:
    """``value`` if it is a list, else ``[]``."""
    return value if isinstance(value, list) else []
