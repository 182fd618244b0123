"""Training tests run torch on one thread.

The nets here are tiny, so a second thread gains little, and on a loaded machine (CI runs
installs beside the tests; a developer trains in the background) two OpenMP threads
spin-waiting on one free core made a training step 50-100x slower, measured on this project's
2-core machine.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
