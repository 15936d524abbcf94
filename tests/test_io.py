"""lsdkit.io: atomic writes (permissions, interrupted writes, npz, directories) and sha256."""

import gzip
import hashlib
import os
import stat

import numpy as np
import pytest

from lsdkit.io import (atomic_directory, atomic_open, atomic_save_npz, atomic_write_bytes,
                       atomic_write_text, sha256_file)


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_files_and_directories_honour_the_umask(tmp_path, umask):
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x\n")) == 0o666 & ~umask
    assert _mode(atomic_write_bytes(tmp_path / "b.bin", b"x")) == 0o666 & ~umask
    assert _mode(atomic_save_npz(tmp_path / "c.npz", {"x": np.zeros(2)})) == 0o666 & ~umask
    with atomic_open(tmp_path / "d.csv", "w", newline="") as f:
        f.write("a,b\n")
    assert _mode(tmp_path / "d.csv") == 0o666 & ~umask
    with atomic_directory(tmp_path / "dir") as d:
        (d / "f").write_text("x")
    assert _mode(tmp_path / "dir") == 0o777 & ~umask
    assert _leftovers(tmp_path) == []


def test_parents_are_created_and_text_is_kept_exactly(tmp_path):
    path = atomic_write_text(tmp_path / "new" / "deeper" / "t.txt", "a\nb\r\nü")
    assert path.read_bytes() == "a\nb\r\nü".encode()


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="simulated"):
        with atomic_open(target, "w") as f:
            f.write("half of the new conte")
            assert target.read_text() == "old\n"      # nothing visible while writing
            raise RuntimeError("simulated failure")
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_a_failing_writer_leaves_no_file_at_all(tmp_path):
    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("simulated failure")

    with pytest.raises(RuntimeError, match="simulated"):
        atomic_save_npz(tmp_path / "x.npz", {"a": Boom()})
    assert list(tmp_path.iterdir()) == []


def test_temp_file_is_named_after_the_target_in_the_same_folder(tmp_path):
    with atomic_open(tmp_path / "data.fasta", "wb"):
        (tmp,) = tmp_path.iterdir()
        assert tmp.name.startswith(".data.fasta.") and tmp.name.endswith(".tmp")
    assert not tmp.exists() and [p.name for p in tmp_path.iterdir()] == ["data.fasta"]


def test_a_wrapper_may_close_the_handle(tmp_path):
    with atomic_open(tmp_path / "t.gz", "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
            gz.write(b"hello")
        raw.close()
    assert gzip.decompress((tmp_path / "t.gz").read_bytes()) == b"hello"


def test_npz_round_trip(tmp_path):
    arrays = {"values": np.arange(12, dtype=np.float32).reshape(3, 4), "ids": np.array(["a", "b"])}
    path = atomic_save_npz(tmp_path / "x.npz", arrays)
    with np.load(path) as f:
        assert sorted(f.files) == ["ids", "values"]
        np.testing.assert_array_equal(f["values"], arrays["values"])
        np.testing.assert_array_equal(f["ids"], arrays["ids"])
    assert path.read_bytes()[:2] == b"PK"             # a zip, like np.savez


def test_directory_is_replaced_whole_and_a_failure_keeps_the_old_one(tmp_path):
    final = tmp_path / "ckpt"
    with atomic_directory(final) as d:
        (d / "a").write_text("1")
        (d / "b").write_text("1")
    with atomic_directory(final) as d:
        (d / "a").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["a"] and (final / "a").read_text() == "2"
    with pytest.raises(RuntimeError, match="simulated"):
        with atomic_directory(final) as d:
            (d / "a").write_text("3")
            raise RuntimeError("simulated failure")
    assert (final / "a").read_text() == "2"
    assert _leftovers(tmp_path) == []


def test_sha256_file_matches_hashlib(tmp_path):
    data = b"lsdkit\n" * 100_000 + bytes(range(256))
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass
    assert list(tmp_path.iterdir()) == []
