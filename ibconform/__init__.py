"""ibconform: prove a GPU node's InfiniBand SR-IOV stack works end to end."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ibconform")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
