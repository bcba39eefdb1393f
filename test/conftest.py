"""Test-suite root: puts test/ on sys.path, so shared helpers (language_data_dirs) import by
name; fixtures shared by several test files."""

import pytest
from language_data_dirs import TINY_CTC, train_asr


@pytest.fixture(scope="session")
def tiny_ctc(tmp_path_factory):
    """A directory with a tiny CTC model trained once per session by ``espnet2.bin.asr_train``
    (:data:`~language_data_dirs.TINY_CTC`): ``exp/config.yaml``, ``exp/1epoch.pth``,
    ``masks.pt``, data ``train/`` (es and fr). Tests write only new names into it."""
    tmp = tmp_path_factory.mktemp("tiny_ctc")
    result = train_asr(tmp, TINY_CTC)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp
