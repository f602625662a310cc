import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Two independent certificate sets from `fedseed certs` (the second one's CA is a stranger)."""
    from fedseed.cli import main

    good, other = tmp_path_factory.mktemp("pki"), tmp_path_factory.mktemp("other")
    assert main(["certs", "--out", str(good), "--clients", "c0,c1,alice"]) == 0
    assert main(["certs", "--out", str(other), "--clients", "c0,alice"]) == 0
    return good, other
