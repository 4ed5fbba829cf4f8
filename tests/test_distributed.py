"""serve.distributed on a local Ray: the same records as serve.tag, shards, faults, errors."""
import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, default_sigint, run_module

pytestmark = pytest.mark.slow
pytest.importorskip("ray")


def records_of(out):
    """Every output record, sorted by (path, line)."""
    records = []
    for path in sorted(out.glob("*.jsonl")):
        records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(records, key=lambda r: (r["path"], r["line"]))


def serve_tag_records(model, paths, extra=()):
    """serve.tag's records for each file, with (path, line) added."""
    records = []
    for path in paths:
        result = run_module("serve.tag", path, "--model", model, "--quiet", *extra)
        assert result.returncode == 0, result.stderr
        records += [{"path": str(path), "line": number, **json.loads(line)}
                    for number, line in enumerate(result.stdout.splitlines(), 1)]
    return sorted(records, key=lambda r: (r["path"], r["line"]))


def distributed(model, out, *inputs, extra=(), env=None, timeout=600):
    return run_module("serve.distributed", *inputs, "--out", out, "--model", model, "--quiet",
                      *extra, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def msra_test_files(tmp_path_factory):
    """The MSRA test text as three files of one text a line (one large: several shards), plus
    one with CRLF ends, empty lines and no final newline."""
    from data.corpus.formats import read_corpus
    from data.msra import prepare

    folder = tmp_path_factory.mktemp("inputs")
    files = prepare(folder / "msra", ROOT / "data" / "cache")
    texts = [s.text for s in read_corpus(files["test"]).sentences]
    parts = [texts[:3000], texts[3000:4200], texts[4200:]]
    paths = []
    for index, part in enumerate(parts):
        path = folder / f"part{index}.txt"
        path.write_text("\n".join(part) + "\n", encoding="utf-8")
        paths.append(path)
    odd = folder / "odd.txt"
    odd.write_bytes(("\r\n".join(texts[:50]) + "\r\n\r\n\n" + "\n".join(texts[50:80]))
                    .encode("utf-8"))  # CRLF, empty lines, no final newline
    paths.append(odd)
    return paths


def test_word_lists_and_min_score_as_in_serve_tag_and_in_the_manifest(exported,
                                                                      msra_test_files, tmp_path):
    model = exported[0]
    force = tmp_path / "force.txt"
    force.write_text("北京 LOC\n中国 LOC\n# a comment\n国务院 ORG\n", encoding="utf-8")
    extra = ["--force-words", str(force), "--min-score", "0"]
    out = tmp_path / "out"
    result = distributed(model, out, msra_test_files[1], extra=extra)
    assert result.returncode == 0, result.stderr[-3000:]
    records = records_of(out)
    assert records == serve_tag_records(model, msra_test_files[1:2], extra)
    assert any(e["text"] == "北京" for r in records for e in r["entities"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["force_words"]["words"] == 3 and manifest["min_score"] == 0.0
    assert manifest["words"] is None and manifest["scores"] is True
    # other settings are another job: the done shards are tagged again, not reused
    result = distributed(model, out, msra_test_files[1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert records_of(out) == serve_tag_records(model, msra_test_files[1:2])


def test_same_records_as_serve_tag_with_shards_and_every_line_once(exported, msra_test_files,
                                                                   tmp_path):
    model = exported[0]
    out = tmp_path / "out"
    result = distributed(model, out, *msra_test_files, extra=["--shard-bytes", "60000"])
    assert result.returncode == 0, result.stderr[-3000:]
    shards = json.loads((out / "manifest.json").read_text())["inputs"]
    assert len(shards[0]["shards"]) >= 2  # the large file was split
    assert all(len(entry["shards"]) >= 2 for entry in shards[:2])
    records = records_of(out)
    assert records == serve_tag_records(model, msra_test_files)
    lines = [(r["path"], r["line"]) for r in records]
    assert len(lines) == len(set(lines))  # every line exactly once
    odd = str(msra_test_files[-1])
    assert [r["line"] for r in records if r["path"] == odd] == list(range(1, 83))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["records"] == len(records)
    assert manifest["chars"] == sum(len(r["text"]) for r in records)

    again = distributed(model, out, *msra_test_files, extra=["--shard-bytes", "60000"])
    assert again.returncode == 0  # a rerun skips the shards already done, same result
    assert records_of(out) == records


def test_an_actor_killed_mid_job_still_gives_every_record_once(exported, msra_test_files,
                                                              tmp_path):
    model = exported[0]
    out, marker = tmp_path / "out", tmp_path / "failed-once"
    env = {**__import__("os").environ, "NER_DISTRIBUTED_FAIL_ONCE": f"{marker}:2"}
    result = distributed(model, out, *msra_test_files[:2], extra=["--shard-bytes", "40000",
                                                                  "--actors", "2"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists()  # the fault did happen: an actor process exited on its 2nd shard
    assert records_of(out) == serve_tag_records(model, msra_test_files[:2])


def test_parquet_output_holds_the_same_records(exported, msra_test_files, tmp_path):
    pyarrow = pytest.importorskip("pyarrow.parquet")
    model = exported[0]
    out = tmp_path / "out"
    result = distributed(model, out, msra_test_files[1], extra=["--format", "parquet"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = []
    for path in sorted(out.glob("*.parquet")):
        rows += pyarrow.read_table(path).to_pylist()
    assert sorted(rows, key=lambda r: r["line"]) == serve_tag_records(model, msra_test_files[1:2])


def test_missing_input_exits_2_before_ray_starts(exported, tmp_path):
    started = time.monotonic()
    result = distributed(exported[0], tmp_path / "out", tmp_path / "nope.txt")
    assert result.returncode == 2 and result.stderr == f"error: {tmp_path / 'nope.txt'}: no " \
                                                       "such file\n"
    assert time.monotonic() - started < 30 and not (tmp_path / "out").exists()


def test_invalid_utf8_names_file_and_line_and_leaves_no_manifest(exported, tmp_path):
    source = tmp_path / "bad.txt"
    source.write_bytes("北京\n上海\n".encode() + b"ab\xffcd\n" + "广州\n".encode())
    out = tmp_path / "out"
    result = distributed(exported[0], out, source)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {source}:3: invalid UTF-8 (byte 0xff" in result.stderr
    assert not (out / "manifest.json").exists()
    replaced = distributed(exported[0], out, source, extra=["--errors", "replace"])
    assert replaced.returncode == 0
    assert [r["text"] for r in records_of(out)] == ["北京", "上海", "ab\ufffdcd", "广州"]


def test_ctrl_c_exits_130_and_leaves_no_manifest(exported, msra_test_files, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "serve.distributed", *map(str, msra_test_files),
                                "--out", str(out), "--model", str(exported[0]),
                                "--shard-bytes", "5000"], cwd=ROOT, stderr=subprocess.PIPE,
                               text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / ".done").glob("*.json")):
        time.sleep(0.05)  # wait until shards are being written: Ray is up, the job under way
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert code == 130, process.stderr.read()[-2000:]
    assert not (out / "manifest.json").exists()
