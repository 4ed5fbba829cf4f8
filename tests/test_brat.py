"""Brat standoff folders: read to exactly the column form's sentences, written back exactly,
and every error names FILE:LINE with exit 2."""
import pytest

from data.corpus.formats import DataError, read_corpus
from data.corpus.tags import entity_spans
from tests.conftest import FIXTURES, TINY, run_module, valid_fixture_sentences

SENTENCES = 200


@pytest.fixture(scope="module")
def msra(tmp_path_factory):
    """(column file, brat folder written here by hand) of 200 MSRA sentences."""
    root = tmp_path_factory.mktemp("brat")
    sentences, columns = valid_fixture_sentences(root, SENTENCES)
    folder = root / "docs"
    folder.mkdir()
    for number, sentence in enumerate(sentences, 1):  # natural order: 2 before 10
        (folder / f"doc{number}.txt").write_text(sentence.text, encoding="utf-8")
        lines = [f"T{i}\t{kind} {start} {end}\t{sentence.text[start:end]}"
                 for i, (kind, start, end) in enumerate(entity_spans(sentence.tags), 1)]
        lines.append(f"#1\tAnnotatorNotes T1\tchecked {number}")
        (folder / f"doc{number}.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return columns, folder


def test_a_brat_folder_reads_to_the_column_forms_sentences(msra):
    columns, folder = msra
    expected = read_corpus(columns).sentences
    corpus = read_corpus(folder)
    assert corpus.form == "brat"
    assert [(s.text, s.tags) for s in corpus.sentences] == [(s.text, s.tags) for s in expected]
    assert corpus.ignored == SENTENCES  # the notes
    result = run_module("data.check", folder)
    assert result.returncode == 0, result.stderr
    assert f"{folder}: brat form, {SENTENCES} sentences" in result.stdout
    assert f"brat lines of other kinds ignored (relations, attributes, notes): {SENTENCES}" \
        in result.stdout


def test_convert_round_trips_columns_and_brat_exactly(msra, tmp_path):
    columns, folder = msra
    assert run_module("data.convert", columns, tmp_path / "out", "--to", "brat").returncode == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[:3] == [
        "00001.ann", "00001.txt", "00002.ann"]
    assert run_module("data.convert", tmp_path / "out", tmp_path / "back.txt",
                      "--to", "columns").returncode == 0
    assert (tmp_path / "back.txt").read_bytes() == columns.read_bytes()
    assert run_module("data.convert", folder, tmp_path / "again", "--to", "brat").returncode == 0
    for path in (tmp_path / "out").iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes()


def pair(folder, text, ann, stem="a"):
    folder.mkdir(exist_ok=True)
    (folder / f"{stem}.txt").write_text(text, encoding="utf-8", newline="")
    (folder / f"{stem}.ann").write_text(ann, encoding="utf-8")
    return folder / f"{stem}.ann"


def spans(corpus):
    return [[(kind, s.text[start:end]) for kind, start, end in entity_spans(s.tags)]
            for s in corpus.sentences]


def test_fragments_joined_by_nothing_or_whitespace_are_one_span(tmp_path):
    text = "我在北京\n大学读书"
    ann = pair(tmp_path / "d", text, "T1\tORG 2 4;5 7\t北京 大学\nT2\tLOC 2 3;3 4\t北 京\n"
                                     "R1\tPart Arg1:T2 Arg2:T1\nA1\tNegated T1\n")
    with pytest.raises(DataError, match="overlap"):
        read_corpus(ann)
    pair(tmp_path / "d", text, "T1\tORG 2 4;5 7\t北京 大学\nR1\tPart Arg1:T1 Arg2:T1\n"
                               "A1\tNegated T1\nN1\tReference T1 Wikidata:Q1\tx\nE1\tGo:T1\n")
    corpus = read_corpus(tmp_path / "d")
    assert spans(corpus) == [[("ORG", "北京\n大学")]] and corpus.ignored == 4


def test_an_entity_across_a_line_break_is_written_as_fragments(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "我在北京\\n大学读书", "label": [[2, 7, "ORG"]]}\n',
                      encoding="utf-8")
    assert run_module("data.convert", source, tmp_path / "out", "--to", "brat").returncode == 0
    assert (tmp_path / "out" / "00001.ann").read_text(encoding="utf-8") == \
        "T1\tORG 2 4;5 7\t北京 大学\n"
    assert spans(read_corpus(tmp_path / "out")) == [[("ORG", "北京\n大学")]]


def test_a_discontinuous_entity_is_refused_or_read_as_its_outer_extent(tmp_path):
    ann = pair(tmp_path / "d", "北京和上海大学", "T1\tORG 0 2;5 7\t北京 大学\n")
    with pytest.raises(DataError) as error:
        read_corpus(tmp_path / "d")
    assert str(error.value) == (f"{ann}:1: T1: a discontinuous entity (0 2;5 7): pass "
                                "--discontinuous outer to read its outer extent")
    assert spans(read_corpus(tmp_path / "d", discontinuous="outer")) == [[("ORG", "北京和上海大学")]]
    result = run_module("data.check", "--discontinuous", "outer", tmp_path / "d")
    assert result.returncode == 0 and "entities: ORG 1" in result.stdout


def test_spans_with_surrounding_space_are_trimmed(tmp_path):
    pair(tmp_path / "d", "在 北京 住", "T1\tLOC 1 4\t 北京\n")
    corpus = read_corpus(tmp_path / "d")
    assert spans(corpus) == [[("LOC", "北京")]] and corpus.trimmed == 1


ERRORS = [
    ("bad-fragment", "北京", "T1\tLOC 0 x\t北京\n", 1, "T1: fragment '0 x' is not `START END`"),
    ("no-type", "北京", "T1\tLOC\n", 1, "an entity line is `T1<TAB>TYPE START END<TAB>TEXT`"),
    ("outside", "北京", "\nT1\tLOC 0 3\t北京\n", 2,
     "T1: offsets 0 3 outside the text (length 2) or start >= end"),
    ("empty", "北京", "T1\tLOC 1 1\t\n", 1, "outside the text (length 2) or start >= end"),
    ("text-differs", "北京", "T1\tLOC 0 2\t上海\n", 1,
     "T1: its text '上海' differs from the text at those offsets '北京'"),
    ("unknown-kind", "北京", "T1\tLOC 0 2\t北京\nX1\tfoo\n", 2, "unknown annotation line"),
    ("overlap", "北京大学", "T1\tORG 0 4\t北京大学\nT2\tLOC 0 2\t北京\n", 2,
     "T2: spans [0, 2) LOC and [0, 4) ORG overlap"),
]


@pytest.mark.parametrize("text,ann,line,message", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_errors_name_the_ann_file_and_line_exit_2(tmp_path, text, ann, line, message):
    path = pair(tmp_path / "d", text, ann)
    result = run_module("data.check", tmp_path / "d")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}:{line}: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_missing_text_an_empty_folder_and_a_bad_byte_are_named(tmp_path):
    ann = pair(tmp_path / "d", "北京", "T1\tLOC 0 2\t北京\n")
    ann.with_suffix(".txt").unlink()
    result = run_module("data.check", tmp_path / "d")
    assert result.returncode == 2
    assert result.stderr == f"error: {ann}: no text beside it: expected a.txt\n"
    (tmp_path / "e").mkdir()
    result = run_module("data.check", "--format", "brat", tmp_path / "e")
    assert result.returncode == 2
    assert result.stderr == (f"error: {tmp_path / 'e'}: is a folder, not a file (nor a folder "
                             "of brat .txt/.ann pairs)\n")
    ann = pair(tmp_path / "f", "北京", "T1\tLOC 0 2\t北京\n")
    ann.with_suffix(".txt").write_bytes(b"ok\n\xff\xfe\n")
    result = run_module("data.check", tmp_path / "f")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {ann.with_suffix('.txt')}:2: ")


def test_convert_refuses_a_brat_output_that_holds_files(msra, tmp_path):
    columns, _ = msra
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_module("data.convert", columns, tmp_path / "out", "--to", "brat")
    assert result.returncode == 2
    assert result.stderr == (f"error: {tmp_path / 'out'}: exists and is not empty: name a new "
                             "folder for brat\n")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_train_reads_a_brat_folder(msra, tmp_path):
    _, folder = msra
    result = run_module("pipeline.train", "--train", folder, "--dev", folder, "--out",
                        tmp_path / "run", "--epochs", "1", *TINY, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"train: {folder}: brat form, {SENTENCES} sentences" in result.stderr
