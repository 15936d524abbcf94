"""Shared fixtures.

* ``data_dir`` - the real data directory from ``LSDKIT_DATA`` (CI sets it to the shared data);
  tests that use it are skipped, with the reason, when it is unset.
* ``fixture_fasta`` - 64 real Swiss-Prot 2014 sequences (length 50-300, one containing a
  selenocysteine ``U``) copied from ``tests/fixtures/swissprot64.fasta`` into ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config):
    """One torch thread for the whole test session: the unit tests use tiny tensors, where extra
    threads only add synchronisation (on a shared 2-core machine a tiny training step went from
    0.09 s to 4.5 s with 2 threads), and pinned thread counts keep numbers reproducible."""
    import torch
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Browser tests last: they open notebooks 03/04 in JupyterLab and load the models that the
    notebook test (papermill) trained into the shared ``study_run_dir``."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
SWISSPROT64 = FIXTURES / "swissprot64.fasta"


@pytest.fixture
def data_dir() -> Path:
    """The directory named by ``LSDKIT_DATA``; skip when it is unset or missing."""
    value = os.environ.get("LSDKIT_DATA")
    if not value:
        pytest.skip("LSDKIT_DATA is not set: this test needs the real data directory")
    path = Path(value).expanduser()
    if not path.is_dir():
        pytest.skip(f"LSDKIT_DATA={value!r} is not a directory")
    return path


@pytest.fixture
def fixture_fasta(tmp_path) -> Path:
    """A writable copy of the 64-sequence Swiss-Prot fixture."""
    dest = tmp_path / "swissprot64.fasta"
    shutil.copyfile(SWISSPROT64, dest)
    return dest


@pytest.fixture(scope="session")
def study_run_dir(tmp_path_factory) -> Path:
    """One study run directory per test session, shared by the notebook and browser tests, so the
    tiny models are trained once and loaded after (``LSDKIT_CI_RUN_DIR`` names a persistent one)."""
    explicit = os.environ.get("LSDKIT_CI_RUN_DIR")
    if explicit:
        Path(explicit).mkdir(parents=True, exist_ok=True)
        return Path(explicit).resolve()
    return tmp_path_factory.mktemp("study-run")


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    """Where tests leave files for people to inspect: ``$LSDKIT_ARTIFACTS`` or ``test-artifacts/``."""
    root = Path(os.environ.get("LSDKIT_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    return root
