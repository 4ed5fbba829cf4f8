"""Shared fixtures: one tiny model trained through the CLI and exported once per session."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# --epoch-min-steps 0: one pass an epoch, so a 3-epoch fixture run stays 3 short passes
TINY = ["--embedding-dim", "16", "--hidden-size", "16", "--bigram-dim", "8",
        "--batch-size", "16", "--patience", "10", "--epoch-min-steps", "0"]


@pytest.fixture(scope="session", autouse=True)
def word_list_cache(tmp_path_factory):
    """Parsed word lists go to a folder of this test session, not the user's ~/.cache (the
    commands the tests start inherit it)."""
    import os

    folder = tmp_path_factory.mktemp("word-list-cache")
    os.environ["NER_WORD_LIST_CACHE"] = str(folder)
    return folder


def train_command(out, epochs, *extra):
    return [sys.executable, "-m", "pipeline.train", "--train", str(FIXTURES / "train.txt"),
            "--dev", str(FIXTURES / "dev.txt"), "--test", str(FIXTURES / "dev.txt"),
            "--out", str(out), "--epochs", str(epochs), *TINY, *extra]


def valid_fixture_sentences(folder: Path, count: int = 200):
    """(the fixture's first `count` sentences with valid BMES, a column file of them in
    `folder`): the reference that every other form must read back to."""
    from data.corpus.formats import read_corpus
    from data.corpus.tags import invalid_transitions

    sentences = [s for s in read_corpus(FIXTURES / "train.txt").sentences
                 if not invalid_transitions(s.tags)][:count]
    assert len(sentences) == count
    path = folder / "columns.txt"
    path.write_text("".join("".join(f"{c} {t}\n" for c, t in zip(s.text, s.tags)) + "\n"
                            for s in sentences), encoding="utf-8")
    return sentences, path


def default_sigint():
    """preexec_fn for children a test interrupts: a shell that starts the tests in the
    background ignores SIGINT, children inherit that, and Python then installs no
    KeyboardInterrupt handler; restore the default so Ctrl-C behaves as for a user."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_module(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = subprocess.run(train_command(out, 3), capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    """(fp32 path, int8 path, export stdout) of the tiny run."""
    run, _ = trained_run
    out = tmp_path_factory.mktemp("models") / "tiny.onnx"
    result = run_module("export.to_onnx", "--run", run, "--out", out, "--quantize", "int8")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return out, out.with_suffix(".int8.onnx"), result.stdout


def kill_at_epoch(command, epoch: int, epochs: int):
    """Start a training-like command and SIGKILL it as soon as it reports `epoch N/M`."""
    import signal
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=ROOT)
    for line in process.stdout:
        if line.startswith(f"epoch {epoch}/{epochs}"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
