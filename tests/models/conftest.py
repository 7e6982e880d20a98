import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    # The test machine is shared: keep model tests on one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
