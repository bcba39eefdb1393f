"""Test-suite root: puts test/ on sys.path, so shared helpers (language_data_dirs) import by
name; fixtures shared by several test files."""

import os

import pytest
import torch
from language_data_dirs import TINY_CTC, train_asr

if "PYTEST_XDIST_WORKER" in os.environ:
    # the workers share the cores (setup.cfg: -n 2): one thread each, in this process and the
    # training processes the tests start
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_ctc(tmp_path_factory):
    """A directory with a tiny CTC model trained once per session by ``espnet2.bin.asr_train``
    (:data:`~language_data_dirs.TINY_CTC`): ``exp/config.yaml``, ``exp/1epoch.pth``,
    ``masks.pt``, data ``train/`` (es and fr). Tests write only new names into it."""
    tmp = tmp_path_factory.mktemp("tiny_ctc")
    result = train_asr(tmp, TINY_CTC)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp
