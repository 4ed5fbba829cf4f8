"""Span files from annotation tools: every form reads to the same sentences and tags as the
column form, conversions round trip, and every error names FILE:LINE with exit 2."""
import json
import subprocess
import sys

import pytest

from data.corpus.formats import DataError, read_corpus
from data.corpus.tags import entity_spans, invalid_transitions
from tests.conftest import FIXTURES, ROOT, run_module, valid_fixture_sentences

SENTENCES = 200


@pytest.fixture(scope="module")
def columns_file(tmp_path_factory):
    """200 MSRA sentences (the fixture's, all with valid BMES) in the column form."""
    sentences, path = valid_fixture_sentences(tmp_path_factory.mktemp("forms"), SENTENCES)
    assert sum(1 for s in sentences for _ in entity_spans(s.tags)) > 100
    return path


def spans_of(sentence):
    return [(start, end, entity_type) for entity_type, start, end in entity_spans(sentence.tags)]


def doccano(sentences, key="label"):
    return "".join(json.dumps({"id": i, "text": s.text,
                               key: [[a, b, t] for a, b, t in spans_of(s)]},
                              ensure_ascii=False) + "\n" for i, s in enumerate(sentences))


def doccano_objects(sentences):
    return "".join(json.dumps({"text": s.text, "entities": [
        {"id": j, "start_offset": a, "end_offset": b, "label": t}
        for j, (a, b, t) in enumerate(spans_of(s))]}, ensure_ascii=False) + "\n"
        for s in sentences)


def ours(sentences):
    return "".join(json.dumps({"text": s.text, "entities": [
        {"type": t, "start": a, "end": b, "text": s.text[a:b]} for a, b, t in spans_of(s)]},
        ensure_ascii=False) + "\n" for s in sentences)


def spacy(sentences, key="spans"):
    return "".join(json.dumps({"text": s.text, key: [
        {"start": a, "end": b, "label": t} for a, b, t in spans_of(s)]}, ensure_ascii=False)
        + "\n" for s in sentences)


def label_studio(sentences):
    tasks = [{"id": i, "data": {"text": s.text}, "annotations": [
        {"id": 1, "was_cancelled": True, "result": []},
        {"id": 2, "result": [{"from_name": "label", "to_name": "text", "type": "labels",
                              "value": {"start": a, "end": b, "text": s.text[a:b],
                                        "labels": [t]}} for a, b, t in spans_of(s)]}]}
             for i, s in enumerate(sentences)]
    return json.dumps(tasks, ensure_ascii=False, indent=2)


WRITERS = {"doccano": doccano, "doccano-labels": lambda s: doccano(s, "labels"),
           "doccano-objects": doccano_objects, "jsonl": ours, "spacy": spacy,
           "spacy-ents": lambda s: spacy(s, "ents"), "label-studio": label_studio}
FORM_OF = {"doccano": "doccano", "doccano-labels": "doccano", "doccano-objects": "doccano",
           "jsonl": "jsonl", "spacy": "spacy", "spacy-ents": "spacy",
           "label-studio": "label-studio"}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_form_reads_as_the_column_form(columns_file, tmp_path, writer):
    expected = read_corpus(columns_file).sentences
    path = tmp_path / "data.json"
    path.write_text(WRITERS[writer](expected), encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.form == FORM_OF[writer]
    assert [(s.text, s.tags) for s in corpus.sentences] == [(s.text, s.tags) for s in expected]
    named = read_corpus(path, form=FORM_OF[writer])  # --format names it: the same reading
    assert [(s.text, s.tags) for s in named.sentences] == [(s.text, s.tags) for s in expected]


@pytest.mark.parametrize("writer", list(WRITERS))
def test_convert_round_trips_columns_through_each_form_byte_identically(columns_file, tmp_path,
                                                                        writer):
    expected = read_corpus(columns_file).sentences
    form_file = tmp_path / "form.json"
    form_file.write_text(WRITERS[writer](expected), encoding="utf-8")
    back = tmp_path / "back.txt"
    result = run_module("data.convert", form_file, back, "--to", "columns")
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == columns_file.read_bytes()


def test_convert_columns_to_jsonl_and_back(columns_file, tmp_path):
    jsonl, back = tmp_path / "out.jsonl", tmp_path / "back.txt"
    assert run_module("data.convert", columns_file, jsonl, "--to", "jsonl").returncode == 0
    assert jsonl.read_text(encoding="utf-8") == ours(read_corpus(columns_file).sentences)
    assert run_module("data.convert", jsonl, back, "--to", "columns").returncode == 0
    assert back.read_bytes() == columns_file.read_bytes()


def test_a_sentence_may_hold_any_character_and_a_newline(tmp_path):
    path = tmp_path / "odd.jsonl"
    text = "上海\n北京 A\u3000B"
    path.write_text(json.dumps({"text": text, "label": [[0, 2, "LOC"], [3, 5, "LOC"]]},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    sentence = read_corpus(path).sentences[0]
    assert sentence.text == text
    assert sentence.tags == ["B-LOC", "E-LOC", "O", "B-LOC", "E-LOC", "O", "O", "O", "O"]
    result = run_module("data.convert", path, tmp_path / "x.txt", "--to", "columns")
    assert result.returncode == 2 and f"{path}:1: this sentence holds a newline" in result.stderr
    assert not (tmp_path / "x.txt").exists()


def test_overlaps_resolved_when_asked_and_counted(tmp_path):
    path = tmp_path / "nested.jsonl"
    path.write_text(json.dumps({"text": "中国科学院上海分院", "label": [
        [0, 2, "LOC"], [0, 5, "ORG"], [5, 7, "LOC"], [5, 9, "ORG"]]}, ensure_ascii=False)
        + "\n", encoding="utf-8")
    longest = read_corpus(path, overlaps="keep-longest")
    assert [spans_of(s) for s in longest.sentences] == [[(0, 5, "ORG"), (5, 9, "ORG")]]
    assert longest.overlaps_resolved == 2
    first = read_corpus(path, overlaps="keep-first")
    assert [spans_of(s) for s in first.sentences] == [[(0, 2, "LOC"), (5, 7, "LOC")]]
    result = run_module("data.check", path, "--overlaps", "keep-longest")
    assert result.returncode == 0
    assert "doccano form, 1 sentences, 9 characters" in result.stdout
    assert "entities: ORG 2" in result.stdout and "overlapping spans dropped: 2" in result.stdout


# Spans from the Boson corpus's export whose text begins or ends with a space (U+0020, U+00A0)
BOSON_EDGES = [("哥奉敕主持修建？ 尼伯尔6. 妙应寺白塔", [8, 12, "org_name"], "尼伯尔"),
               ("\xa0\xa0\xa0\xa0亚太地区优秀度假村", [3, 6, "location"], "亚太"),
               ("动通信运营商，原 iPhone美国独家运营商，", [8, 15, "product_name"], "iPhone"),
               ("合6月13日报道 6月13日晚，庞大发布公告称", [8, 15, "time"], "6月13日晚"),
               ("北京 ", [0, 3, "location"], "北京")]


def test_spans_are_trimmed_of_surrounding_whitespace_and_counted(tmp_path):
    path = tmp_path / "edges.jsonl"
    lines = [record(text, [span]) for text, span, _ in BOSON_EDGES]
    lines.append(record("上海 北京", [[2, 3, "LOC"], [3, 5, "LOC"]]))  # all space: dropped
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = read_corpus(path)
    found = [[s.text[start:end] for start, end, _ in spans_of(s)] for s in corpus.sentences]
    assert found == [[kept] for _, _, kept in BOSON_EDGES] + [["北京"]]
    assert corpus.trimmed == len(BOSON_EDGES) + 1
    result = run_module("data.check", path)
    assert result.returncode == 0
    assert f"spans trimmed of surrounding whitespace: {len(BOSON_EDGES) + 1}" in result.stdout


def test_strict_refuses_a_span_with_surrounding_whitespace(tmp_path):
    path = tmp_path / "edges.jsonl"
    text, span, _ = BOSON_EDGES[0]
    path.write_text(record("上海", [[0, 2, "LOC"]]) + "\n" + record(text, [span]) + "\n",
                    encoding="utf-8")
    result = run_module("data.check", "--strict", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == (f"error: {path}:2: line 2: span [8, 12) org_name ' 尼伯尔' begins "
                             "or ends with whitespace (--strict)\n")


def record(text, spans, key="label"):
    return json.dumps({"text": text, key: spans}, ensure_ascii=False)


ERRORS = [
    ("malformed", '{"text": "上海", "label": []}\n{"text": "北京", "label": [\n', 2,
     "malformed JSON"),
    ("missing-text", record("上海", []) + "\n" + '{"label": [[0, 1, "LOC"]]}\n', 2,
     "missing `text`"),
    ("outside", record("上海", [[0, 3, "LOC"]]) + "\n", 1, "offsets outside the text"),
    ("negative", record("上海", [[-1, 1, "LOC"]]) + "\n", 1, "offsets outside the text"),
    ("start-ge-end", "\n" + record("上海", [[1, 1, "LOC"]]) + "\n", 2, "start >= end"),
    ("text-disagrees", json.dumps({"text": "上海北京", "entities": [
        {"type": "LOC", "start": 0, "end": 2, "text": "北京"}]}, ensure_ascii=False) + "\n", 1,
     "differs from the text at those offsets"),
    ("overlap", record("中国科学院", [[0, 2, "LOC"], [0, 5, "ORG"]]) + "\n", 1,
     "spans [0, 2) LOC and [0, 5) ORG overlap"),
    ("nested", record("中国科学院", [[0, 5, "ORG"], [2, 4, "ORG"]]) + "\n", 1,
     "spans [0, 5) ORG and [2, 4) ORG overlap"),
    ("empty-label", record("上海", [[0, 2, ""]]) + "\n", 1, "empty label"),
    ("blank-label", record("上海", [[0, 2, "  "]]) + "\n", 1, "empty label"),
    ("space-in-label", record("上海", [[0, 2, "A B"]]) + "\n", 1, "may not contain whitespace"),
    ("offsets-not-int", record("上海", [["0", 2, "LOC"]]) + "\n", 1, "must be integers"),
    ("not-object", "[\n  1\n]\n", 2, "task 0: expected a JSON object"),
]


@pytest.mark.parametrize("content,line,message", [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_span_errors_name_file_and_line_exit_2(tmp_path, content, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_corpus(path)
    assert str(error.value).startswith(f"{path}:{line}: ") and message in str(error.value)
    result = run_module("data.check", path)
    assert result.returncode == 2
    assert f"error: {path}:{line}: " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_label_is_refused_when_labels_are_given(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(record("上海张三", [[0, 2, "LOC"], [2, 4, "PERSON"]]) + "\n",
                    encoding="utf-8")
    result = run_module("data.check", path, "--labels", "LOC,PER")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:1: line 1: span [2, 4) PERSON: unknown label (expected one of LOC, PER)" \
        in result.stderr


def test_label_studio_errors_name_the_task_and_its_line(tmp_path):
    tasks = [{"data": {"text": "上海"}, "annotations": []},
             {"data": {"text": "北京"}, "annotations": [{"result": [
                 {"value": {"start": 0, "end": 2, "text": "北京", "labels": ["LOC", "ORG"]}}]}]},
             ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_corpus(path)
    task_line = path.read_text(encoding="utf-8").split("\n").index(' {', 2) + 1
    assert str(error.value).startswith(f"{path}:{task_line}: task 1: a span needs exactly one")
    bad = tmp_path / "broken.json"
    bad.write_text('[\n {"data": {"text": "上海"}},\n {"data": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken.json:4: malformed JSON"):
        read_corpus(bad)


def test_column_file_starting_with_a_bracket_character_is_still_columns(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("{ O\n[ O\n上 B-LOC\n海 E-LOC\n", encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.form == "columns" and corpus.sentences[0].text == "{[上海"


@pytest.mark.slow
def test_train_on_doccano_and_on_serve_tag_output(columns_file, tmp_path, exported):
    """pipeline.train reads doccano JSONL; serve.tag's output, fed back, trains too."""
    from tests.conftest import train_command

    sentences = read_corpus(columns_file).sentences
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text(doccano(sentences[:160]), encoding="utf-8")
    dev.write_text(doccano(sentences[160:]), encoding="utf-8")
    command = train_command(tmp_path / "run", 1, "--no-lexicon")
    command[command.index("--train") + 1] = str(train)
    command[command.index("--dev") + 1] = str(dev)
    command[command.index("--test") + 1] = str(dev)
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "doccano form, 160 sentences" in result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["dev"]["micro"]

    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(s.text for s in sentences[:50]) + "\n", encoding="utf-8")
    tagged = tmp_path / "tagged.jsonl"
    result = run_module("serve.tag", raw, "--model", exported[0], "-o", tagged)
    assert result.returncode == 0, result.stderr
    assert read_corpus(tagged).form == "jsonl"
    command = train_command(tmp_path / "again", 1, "--no-lexicon")
    command[command.index("--train") + 1] = str(tagged)
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "jsonl form, 50 sentences" in result.stderr


def test_cli_help_lists_the_forms():
    for module in ("data.check", "data.convert"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                                text=True, cwd=ROOT)
        assert result.returncode == 0 and "label-studio" in result.stdout
