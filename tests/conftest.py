import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_fresh_param_store():
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield


# Case modules are imported by registry.py, never collected on their own (a circular import).
collect_ignore_glob = ["cases_*.py", "registry.py"]
