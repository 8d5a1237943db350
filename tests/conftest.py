import pyro
import pytest
import torch


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
