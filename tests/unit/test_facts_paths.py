"""facts._name: the folder names VF rows read from /sys paths and link targets, as PurePosixPath gives them."""

from pathlib import PurePosixPath

import pytest

from ibconform.facts import _name

PATHS = [
    "/sys/class/net/ibp24s0/device/virtfn3/infiniband/mlx5_12/ports/1/state",
    "../../../0000:c1:00.1",          # a virtfn link's target, as readlink prints it
    "../../../0000:c1:00.1/",
    "/sys/class/net/ibp24s0//device/./virtfn0",
    "mlx5_core",
    "",
    "/",
]


@pytest.mark.parametrize("path", PATHS)
def test_name_is_purepath_name(path):
    assert _name(path) == PurePosixPath(path).name


@pytest.mark.parametrize("path", [p for p in PATHS if len(PurePosixPath(p).parts) > 4])
@pytest.mark.parametrize("up", [1, 2, 3])
def test_name_up_is_purepath_parents(path, up):
    assert _name(path, up) == PurePosixPath(path).parents[up - 1].name
