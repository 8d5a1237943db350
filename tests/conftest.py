import os
from pathlib import Path

import pyro
import pytest
import torch

# The offline data files (MNIST IDX) of this checkout's workspace, where present: the library itself only
# reads root= / $PYRO_FLOWZOO_DATA / ~/.cache/pyro_flowzoo; tests needing the files skip without them.
_WORKSPACE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("PYRO_FLOWZOO_DATA") and _WORKSPACE_DATA.is_dir():
    os.environ["PYRO_FLOWZOO_DATA"] = str(_WORKSPACE_DATA)


@pytest.fixture(autouse=True)
def _seed_and_fresh_param_store():
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield


@pytest.fixture(scope="module")
def one_thread():
    """For modules of small models (``pytestmark = pytest.mark.usefixtures("one_thread")``): on 2 shared
    cores a second intra-op thread only adds synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Case modules are imported by registry.py, never collected on their own (a circular import).
collect_ignore_glob = ["cases_*.py", "registry.py"]
