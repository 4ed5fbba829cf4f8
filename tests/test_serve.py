"""The deployed tagger and `serve.tag`: every character tagged, order kept, clean errors."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from serve.providers import CPU, CUDA, DeviceError, choose_providers
from serve.tagger import split_points
from tests.conftest import FIXTURES, ROOT, default_sigint, run_module

WEIRD_TEXTS = [
    "",
    "北京",
    "中华人民共和国国务院总理周恩来访问了埃塞俄比亚。" * 4,
    "😀🀄𠀀 astral 😀北京",  # emoji and a CJK Extension B character (outside the BMP)
    "a\x00b\x00北京",  # NUL inside a text
    "iPhone 15 Pro在2024年3月于上海发布，售价7999元。",
    " \t 前后空白 ",
    "\u2028分隔\u2029",
    "x" * 100_000,
]


# -- provider selection (no GPU needed) ---------------------------------------------------
def test_cpu_uses_only_the_cpu_provider():
    assert choose_providers("cpu", [CUDA, CPU]) == ([CPU], None)


def test_cuda_when_available_comes_first_with_cpu_fallback_for_unsupported_ops():
    assert choose_providers("cuda", [CUDA, CPU]) == ([CUDA, CPU], None)
    assert choose_providers("auto", [CUDA, CPU]) == ([CUDA, CPU], None)


def test_cuda_missing_is_a_clear_error_saying_what_to_install():
    with pytest.raises(DeviceError) as caught:
        choose_providers("cuda", [CPU])
    message = str(caught.value)
    assert "no CUDAExecutionProvider" in message and "requirements-gpu.txt" in message
    assert "CPUExecutionProvider" in message


def test_auto_falls_back_to_cpu_with_a_one_line_notice():
    providers, notice = choose_providers("auto", [CPU])
    assert providers == [CPU]
    assert "\n" not in notice and "CPU" in notice


def test_unknown_device_is_refused():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        choose_providers("tpu", [CPU])


# -- splitting long texts -------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a" * 1000, "北京，上海。" * 100, "。" * 301, "ab"])
def test_split_points_cover_everything_within_max_len(text):
    starts = split_points(text, 100)
    ends = starts[1:] + [len(text)]
    assert starts[0] == 0 and all(0 < e - s <= 100 for s, e in zip(starts, ends))


def test_split_prefers_sentence_ends():
    text = ("北" * 70 + "。") * 5
    starts = split_points(text, 100)
    assert all(text[s - 1] == "。" for s in starts[1:])


# -- the tagger -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tagger(exported):
    from serve.tagger import Tagger
    return Tagger.load(exported[0])


@pytest.mark.slow
def test_every_character_gets_exactly_one_tag(tagger):
    tag_lists = tagger.tag_bmeo(WEIRD_TEXTS)
    assert [len(tags) for tags in tag_lists] == [len(text) for text in WEIRD_TEXTS]
    assert all(tag in tagger.tags for tags in tag_lists for tag in tags)


@pytest.mark.slow
def test_entities_point_into_the_original_text(tagger):
    texts = [s for s in (ROOT / "samples" / "news.txt").read_text(encoding="utf-8").split("\n")]
    texts += WEIRD_TEXTS
    for text, entities in zip(texts, tagger.tag(texts)):
        for entity in entities:
            assert 0 <= entity.start < entity.end <= len(text)
            assert entity.text == text[entity.start:entity.end]


@pytest.mark.slow
def test_results_do_not_depend_on_batch_company_or_size(tagger):
    from data.corpus.formats import read_corpus
    texts = [s.text for s in read_corpus(ROOT / "tests" / "fixtures" / "dev.txt").sentences]
    together = tagger.tag_bmeo(texts, batch_size=64)
    alone = [tagger.tag_bmeo([text], batch_size=1)[0] for text in texts[:20]]
    assert together[:20] == alone
    mixed = tagger.tag_bmeo(["x" * 3000] + texts[:20] + ["y" * 500], batch_size=7)
    assert mixed[1:21] == alone


@pytest.mark.slow
def test_long_text_is_tagged_as_its_pieces(tagger):
    piece = "中华人民共和国国务院总理周恩来访问了埃塞俄比亚。"
    long_text = piece * 40  # longer than max_len: split after each 。
    starts = split_points(long_text, tagger.max_len)
    assert len(starts) > 1
    whole = tagger.tag_bmeo([long_text])[0]
    ends = starts[1:] + [len(long_text)]
    pieces = tagger.tag_bmeo([long_text[s:e] for s, e in zip(starts, ends)])
    assert whole == [tag for tags in pieces for tag in tags]


# -- serve.tag CLI --------------------------------------------------------------------------
def tag_cli(model, *args, stdin=None):
    return run_module("serve.tag", "--model", model, "--quiet", *args, input=stdin, timeout=300)


@pytest.mark.slow
def test_cli_jsonl_one_record_per_line_in_order(exported, tmp_path):
    lines = ["北京欢迎你", "", "上海", "😀\x00x", "", "iPhone在2024年发布"]
    source = tmp_path / "in.txt"
    source.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    out = tmp_path / "out.jsonl"
    result = tag_cli(exported[0], source, "-o", out)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == lines
    assert records[1] == {"text": "", "entities": []}
    for record in records:
        for entity in record["entities"]:
            assert record["text"][entity["start"]:entity["end"]] == entity["text"]


@pytest.mark.slow
def test_cli_bmeo_and_conll_formats(exported, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("北京\n\n上海人\n", encoding="utf-8")
    bmeo = tag_cli(exported[0], source, "--format", "bmeo")
    assert bmeo.returncode == 0
    assert [len(line.split()) for line in bmeo.stdout.split("\n")[:3]] == [2, 0, 3]
    conll = tag_cli(exported[0], source, "--format", "conll")
    # A blank line closes each of the 3 records (the empty one is only its blank line).
    assert conll.stdout.endswith("\n\n") and conll.stdout.split("\n").count("") == 3 + 1
    assert [line.split(" ")[0] for line in conll.stdout.splitlines() if line] == list("北京上海人")


@pytest.mark.slow
def test_cli_stdin_and_empty_input(exported, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = tag_cli(exported[0], empty)
    assert result.returncode == 0 and result.stdout == ""
    piped = tag_cli(exported[0], stdin="北京\n")
    assert piped.returncode == 0 and json.loads(piped.stdout)["text"] == "北京"


@pytest.mark.slow
def test_cli_invalid_utf8_names_file_and_line(exported, tmp_path):
    source = tmp_path / "bad.txt"
    source.write_bytes("北京\n上海\n".encode() + b"ab\xffcd\n")
    out = tmp_path / "out.jsonl"
    result = tag_cli(exported[0], source, "-o", out)
    assert result.returncode == 2
    assert f"error: {source}:3: invalid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and list(tmp_path.glob(".out.jsonl*")) == []
    replaced = tag_cli(exported[0], source, "--errors", "replace")
    assert replaced.returncode == 0
    assert json.loads(replaced.stdout.splitlines()[2])["text"] == "ab\ufffdcd"


@pytest.mark.slow
def test_cli_missing_model_or_input_is_a_clear_error(exported, tmp_path):
    result = tag_cli(tmp_path / "nope.onnx", tmp_path / "x.txt")
    assert result.returncode == 2 and "no such file" in result.stderr
    result = run_module("serve.tag", "--model", tmp_path / "nope.onnx", "--quiet", "-",
                        input="x\n")
    assert result.returncode == 2 and "nope.onnx: no such model file" in result.stderr


@pytest.mark.slow
def test_cli_output_gets_ordinary_permissions(exported, tmp_path):
    """Written through a private temporary file, OUT must still be readable as any new file
    is (umask), and replacing a file keeps that file's permissions."""
    source = tmp_path / "in.txt"
    source.write_text("北京\n", encoding="utf-8")
    reference = tmp_path / "reference.txt"
    reference.write_text("")
    out = tmp_path / "out.jsonl"
    assert tag_cli(exported[0], source, "-o", out).returncode == 0
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777
    out.chmod(0o640)
    assert tag_cli(exported[0], source, "-o", out).returncode == 0
    assert out.stat().st_mode & 0o777 == 0o640


@pytest.mark.slow
@pytest.mark.parametrize("layout", [["--workers", "1"], []], ids=["one-process", "workers"])
def test_killing_serve_tag_leaves_no_partial_output(exported, tmp_path, layout):
    """In one process and in the worker processes large inputs get by default. The input is
    large enough (14M characters) that the tiny model is still tagging a second in."""
    source = tmp_path / "big.txt"
    line = "中华人民共和国国务院总理周恩来在外交部长陈毅的陪同下访问了埃塞俄比亚。\n"
    source.write_text(line * 400_000, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    for sig in (signal.SIGINT, signal.SIGKILL):
        process = subprocess.Popen([sys.executable, "-m", "serve.tag", "--model", str(exported[0]),
                                    str(source), "-o", str(out), "--quiet", *layout], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   preexec_fn=default_sigint)
        deadline = time.time() + 60
        while not list(tmp_path.glob(".out.jsonl.*")) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the run: some blocks written to the temporary file
        assert process.poll() is None, "finished before it could be interrupted"
        process.send_signal(sig)
        process.wait(timeout=60)
        assert not out.exists()
        if sig == signal.SIGINT:
            assert process.returncode == 130
            assert list(tmp_path.glob(".out.jsonl.*")) == []  # cleaned up


@pytest.mark.slow
def test_serve_works_where_tensorflow_cannot_be_imported(exported):
    code = f"""
import sys
for name in ("tensorflow", "keras", "tf2onnx"):
    sys.modules[name] = None  # any import of these now raises ImportError
from serve.tagger import Tagger
tagger = Tagger.load({str(exported[0])!r})
tags = tagger.tag_bmeo(["北京欢迎你", ""])
assert [len(t) for t in tags] == [5, 0], tags
print(len(tagger.tag(["上海"])))
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m, v in sys.modules.items() if v)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


@pytest.mark.slow
def test_scripted_serve_tag_loads_no_progress_bar_or_fetching_code(exported, tmp_path):
    """Start-up is paid by every scripted call: with stderr not a terminal (tqdm would hide
    its bar anyway) tqdm is not imported, and a served lexicon model never imports the code
    that fetches a lexicon. The output is still written."""
    source = tmp_path / "in.txt"
    source.write_text("北京欢迎你\n", encoding="utf-8")
    code = f"""
import sys
from serve.tag import main
assert main([{str(source)!r}, "--model", {str(exported[0])!r}, "-o", {str(tmp_path / "o")!r}]) == 0
print(sorted(m for m in ("tqdm", "tarfile", "subprocess") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert "tagged 1 lines, 5 characters" in result.stderr  # the summary stays
    assert (tmp_path / "o").read_text(encoding="utf-8").startswith('{"text": "北京欢迎你"')


def not_a_tagger_files(tmp_path, exported_model):
    """A text file, a directory, a truncated tagger, and a valid ONNX model that is no tagger."""
    import onnx
    from onnx import TensorProto, helper

    text = tmp_path / "notes.txt"
    text.write_text("not a model\n", encoding="utf-8")
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported_model.read_bytes()[:50_000])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), other)
    return {text: "not a valid ONNX file", folder: "not a model file",
            truncated: "not a valid ONNX file", other: "an ONNX model, but not a tagger"}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve.tag", "serve.evaluate", "serve.http",
                                     "serve.distributed"])
def test_every_model_loading_command_refuses_a_non_tagger_path_in_one_line(exported, tmp_path,
                                                                          command):
    pytest.importorskip("onnx")
    source = tmp_path / "in.txt"
    source.write_text("北京\n", encoding="utf-8")
    for model, message in not_a_tagger_files(tmp_path, exported[0]).items():
        args = {"serve.tag": [source, "--model", model],
                "serve.evaluate": ["--model", model, "--data", FIXTURES / "dev.txt"],
                "serve.http": ["--model", model, "--port", "1"],
                "serve.distributed": [source, "--model", model, "--out", tmp_path / "out"]
                }[command]
        result = run_module(command, *args)
        assert result.returncode == 2, (model, result.stderr)
        assert result.stderr.startswith(f"error: {model}: {message}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_workers_default_to_one_process_for_small_inputs_and_one_per_cpu_for_large():
    from serve.tag import resolve_workers
    assert resolve_workers(None, large_input=False) == 1
    assert resolve_workers(None, large_input=True) == max(1, os.cpu_count() or 1)
    assert resolve_workers(3, large_input=False) == 3
    assert resolve_workers(1, large_input=True) == 1


@pytest.mark.slow
def test_large_input_goes_to_worker_processes_with_the_same_output(exported, tmp_path,
                                                                  monkeypatch):
    """Past AUTO_WORKERS_BLOCKS blocks serve.tag starts a worker per CPU by itself; the
    records are those of one process, in input order."""
    import multiprocessing

    from serve import tag
    monkeypatch.setattr(tag, "BLOCK_CHARS", 40)  # blocks are cut in the parent process
    monkeypatch.setattr(tag, "AUTO_WORKERS_BLOCKS", 3)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    pools = []
    real_get_context = multiprocessing.get_context

    def spying_get_context(method=None):
        pools.append(method)
        return real_get_context(method)

    monkeypatch.setattr(multiprocessing, "get_context", spying_get_context)
    lines = [f"{i}日，北京欢迎你，上海人民访问了埃塞俄比亚。" * (1 + i % 3) for i in range(30)]
    lines[7] = ""
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    for name, extra in (("auto", []), ("one", ["--workers", "1"])):
        outputs[name] = tmp_path / f"{name}.jsonl"
        assert tag.main([str(source), "--model", str(exported[0]), "-o",
                         str(outputs[name]), "--quiet", *extra]) == 0
    assert pools == ["spawn"]  # the automatic run, and only it, started workers
    auto = outputs["auto"].read_text(encoding="utf-8")
    assert auto == outputs["one"].read_text(encoding="utf-8")
    assert [json.loads(line)["text"] for line in auto.splitlines()] == lines
    # Many blocks of short lines are not a large input: few characters, one process.
    monkeypatch.setattr(tag, "BLOCK_LINES", 2)
    source.write_text("北\n" * 40, encoding="utf-8")
    assert tag.main([str(source), "--model", str(exported[0]), "-o", str(outputs["auto"]),
                     "--quiet"]) == 0
    assert pools == ["spawn"]
    assert len(outputs["auto"].read_text(encoding="utf-8").splitlines()) == 40


@pytest.mark.parametrize("flag", ["--workers", "--threads", "--batch-size"])
def test_cli_refuses_counts_below_one(tmp_path, flag):
    source = tmp_path / "in.txt"
    source.write_text("北京\n", encoding="utf-8")
    result = tag_cli(tmp_path / "unchecked.onnx", source, flag, "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"python -m serve.tag: error: argument {flag}: 0: expected a positive number"
    assert "Traceback" not in result.stderr
