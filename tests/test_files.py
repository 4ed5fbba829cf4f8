"""The shared file pieces: the one line reader, the atomic writer, the path checks."""
import io
import os

import pytest

from data.files import (DataError, atomic_path, atomic_text, check_input_file, check_output,
                        text_lines, write_text_atomic)


def test_lines_drop_a_first_line_bom_and_crlf_and_keep_empty_lines():
    stream = io.BytesIO("\ufeff北京\r\n\r\n上海\n\ufeff内\n".encode("utf-8"))
    assert list(text_lines("in.txt", stream)) == ["北京", "", "上海", "\ufeff内"]


def test_invalid_utf8_names_file_line_and_byte():
    stream = io.BytesIO("北京\n上海\n".encode() + b"ab\xff\n")
    with pytest.raises(DataError) as caught:
        list(text_lines("in.txt", stream))
    assert str(caught.value) == ("in.txt:3: invalid UTF-8 (byte 0xff at byte 3 of the line); "
                                 "the input must be UTF-8, or pass --errors replace")


def test_line_numbers_start_where_a_shard_starts_and_replace_keeps_going():
    lines = [b"ok\n", b"\xffbad\n"]
    with pytest.raises(DataError, match=r"^part:41: invalid UTF-8"):
        list(text_lines("part", lines, first_line=40))
    assert list(text_lines("part", lines, "replace", first_line=40)) == ["ok", "\ufffdbad"]


def test_a_bom_counts_only_on_the_first_line_of_the_file():
    assert list(text_lines("p", [b"\xef\xbb\xbfx\n"], first_line=2)) == ["\ufeffx"]


def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    with pytest.raises(RuntimeError):
        with atomic_text(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("injected failure")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # no partial file left behind
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and os.listdir(tmp_path) == ["out.txt"]
    assert target.stat().st_mode & 0o777 == 0o640  # the replaced file's permissions


def test_atomic_path_keeps_the_suffix_a_writer_insists_on(tmp_path):
    target = tmp_path / "model.keras"
    with atomic_path(target, ".keras") as partial:
        assert partial.name.endswith(".keras") and partial.parent == tmp_path
        partial.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"


def test_output_checks_refuse_before_any_work(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a folder: name a file to write"):
        check_output(tmp_path / "folder")
    with pytest.raises(DataError, match="does not exist"):
        check_output(tmp_path / "missing" / "out.txt")
    with pytest.raises(DataError, match="exists and is not a folder"):
        check_output(tmp_path / "file", folder=True)
    with pytest.raises(DataError, match="is not a folder"):
        check_output(tmp_path / "file" / "out.txt")
    check_output(tmp_path / "new" / "out.txt", create_parent=True)
    assert (tmp_path / "new").is_dir()


def test_input_checks(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a file"):
        check_input_file(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        check_input_file(tmp_path / "missing.txt")
