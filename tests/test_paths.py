"""Every command refuses unusable paths before any work: one line naming the path, exit 2."""
import pytest

from tests.conftest import FIXTURES, run_module

DEV = FIXTURES / "dev.txt"


def cases(tmp, model, run):
    """(command and arguments, the path the message must name, what it must say)."""
    folder, missing = tmp / "folder", tmp / "missing" / "out.txt"
    file = tmp / "file.txt"
    return [
        (["serve.tag", DEV, "--model", model, "-o", folder], folder, "is a folder"),
        (["serve.tag", folder, "--model", model], folder, "is a folder, not a file"),
        (["serve.distributed", DEV, "--model", model, "--out", file], file, "not a folder"),
        (["serve.distributed", folder, "--model", model, "--out", tmp / "o"], folder,
         "is a folder, not a file"),
        (["serve.evaluate", "--model", model, "--data", folder], folder, "is a folder"),
        (["serve.evaluate", "--model", model, "--data", DEV, "--calibration", "--plot", folder],
         folder, "is a folder"),
        (["serve.evaluate", "--model", model, "--data", DEV, "--calibration", "--plot",
          missing], missing, "does not exist"),
        (["serve.http", "--model", folder, "--port", "1"], folder, "not a model file"),
        (["pipeline.select", "--model", model, "--pool", DEV, "--n", "2", "--format", "jsonl",
          "-o", folder], folder, "is a folder"),
        (["pipeline.select", "--model", model, "--pool", folder, "--n", "2", "--format",
          "jsonl", "-o", tmp / "s.jsonl"], folder, "is a folder, not a file"),
        (["pipeline.select", "--model", model, "--pool", DEV, "--n", "2", "--format", "jsonl",
          "-o", missing], missing, "does not exist"),
        (["pipeline.word_lists", "--model", model, "--train", DEV, "--test", DEV, "--out",
          file], file, "not a folder"),
        (["pipeline.learning_curve", "--train", DEV, "--dev", DEV, "--test", DEV, "--out",
          file], file, "not a folder"),
        (["data.convert", folder, tmp / "c.txt", "--to", "jsonl"], folder, "is a folder"),
        (["data.convert", DEV, folder, "--to", "jsonl"], folder, "is a folder"),
        (["data.convert", DEV, missing, "--to", "jsonl"], missing, "does not exist"),
        (["data.check", folder], folder, "is a folder, not a file"),
        (["data.msra", "--out", file], file, "not a folder"),
        (["export.to_onnx", "--run", run, "--out", folder], folder, "is a folder"),
        (["pipeline.train", "--train", DEV, "--dev", DEV, "--out", file], file,
         "not a folder"),
        (["pipeline.train", "--train", folder, "--dev", DEV, "--out", tmp / "r"], folder,
         "is a folder, not a file"),
        (["pipeline.distill", "--teacher", run, "--train", DEV, "--dev", DEV, "--out", file],
         file, "not a folder"),
        (["pipeline.evaluate", "--run", run, "--data", folder], folder, "is a folder"),
        (["pipeline.tune", "--out", file], file, "not a folder"),
        (["pipeline.bench", "--run", run, "--model", model, "--out", file], file,
         "not a folder"),
        (["pipeline.loadtest", "--model", model, "--data", DEV, "--out", file], file,
         "not a folder"),
    ]


@pytest.mark.slow
def test_every_command_refuses_unusable_paths_in_one_line(exported, trained_run, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    failures = []
    for args, path, said in cases(tmp_path, exported[0], trained_run[0]):
        result = run_module(*args, timeout=120)
        lines = result.stderr.strip().splitlines()
        ok = result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") \
            and str(path) in lines[0] and said in lines[0]
        if not ok:
            failures.append(f"{args[0]} {args[1:]}: rc {result.returncode}: "
                            f"{result.stderr.strip()[-300:]}")
    assert not (tmp_path / "missing").exists()
    assert not failures, "\n".join(failures)
