"""Reading every accepted input form, and every error case (file:line, exit 2, no traceback)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.corpus.formats import DataError, read_corpus
from data.corpus.tags import bmes_to_bio, entity_spans, invalid_transitions, tag_set
from data.encoding.vocab import UNK_ID, BigramVocab, CharVocab

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_TEXT = "华东师范大学在上海"
EXPECTED_TAGS = ["B-ORG", "M-ORG", "M-ORG", "M-ORG", "M-ORG", "E-ORG", "O", "B-LOC", "E-LOC"]


def write(tmp_path, content, name="data.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def columns(separator=" ", tags=EXPECTED_TAGS, line_end="\n"):
    body = line_end.join(f"{c}{separator}{t}" for c, t in zip(EXPECTED_TEXT, tags))
    return body + line_end + line_end + f"好{separator}O" + line_end


@pytest.mark.parametrize("content", [
    columns(" "),
    columns("\t"),
    columns(" ", line_end="\r\n"),
    "\ufeff" + columns(" "),
    columns(" ").replace(" O\n", " O  \t\n"),  # trailing whitespace
    columns(" ", tags=[t.replace("-", "_") for t in EXPECTED_TAGS]),
    columns(" ", tags=[t.replace("M-", "I-") for t in EXPECTED_TAGS]),  # I- as M- in BMES data
    " ".join(f"{c}\\{t.replace('-', '_')}" for c, t in zip(EXPECTED_TEXT, EXPECTED_TAGS)) + "\n好\\O\n",
    " ".join(f"{c}\\{t}" for c, t in zip(EXPECTED_TEXT, EXPECTED_TAGS)) + "\r\n\r\n好\\O\r\n",
], ids=["space", "tab", "crlf", "bom", "trailing-ws", "underscore", "I-for-M", "inline", "inline-crlf"])
def test_every_input_form_reads_the_same(tmp_path, content):
    corpus = read_corpus(write(tmp_path, content))
    assert [s.text for s in corpus.sentences] == [EXPECTED_TEXT, "好"]
    assert corpus.sentences[0].tags == EXPECTED_TAGS
    assert corpus.sentences[1].tags == ["O"]
    assert not corpus.converted_from_bio
    assert corpus.transition_problems == []


def test_plain_bio_file_is_detected_and_converted(tmp_path):
    bio = ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "I-LOC"]
    text = "\n".join(f"{c} {t}" for c, t in zip(EXPECTED_TEXT, bio)) + "\n\n我 B-PER\n"
    corpus = read_corpus(write(tmp_path, text))
    assert corpus.converted_from_bio
    assert corpus.sentences[0].tags == EXPECTED_TAGS
    assert corpus.sentences[1].tags == ["S-PER"]


def test_whitespace_character_token(tmp_path):
    corpus = read_corpus(write(tmp_path, "a O\n\u3000 O\nb O\n"))
    assert corpus.sentences[0].text == "a\u3000b"


def test_sentence_start_lines(tmp_path):
    corpus = read_corpus(write(tmp_path, "\n\na O\nb O\n\n\nc O\n"))
    assert [(s.text, s.line) for s in corpus.sentences] == [("ab", 3), ("c", 7)]


@pytest.mark.parametrize("content,line,fragment", [
    ("a O\nb\nc O\n", 2, "no tag"),
    ("a O\nb O extra\n", 2, "3 fields"),
    ("a O\nb X-PER\n", 2, "unknown shape"),
    ("a O\nb B-\n", 2, "unknown shape"),
    ("a O\nab O\n", 2, "not a single character"),
    ("a\\O b\\B-PER c\n", 1, "has no tag"),
    ("a\\O b\\O\nc\\Q-PER\n", 2, "unknown shape"),
])
def test_errors_name_file_and_line(tmp_path, content, line, fragment):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as caught:
        read_corpus(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert fragment in str(caught.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n", "\ufeff"])
def test_empty_file_is_an_error(tmp_path, content):
    with pytest.raises(DataError, match="empty file"):
        read_corpus(write(tmp_path, content))


def test_invalid_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"a O\nb O\n\xff O\n")
    with pytest.raises(DataError, match=r":3: invalid UTF-8"):
        read_corpus(path)


def test_invalid_transitions_are_counted_and_strict_refuses(tmp_path):
    path = write(tmp_path, "a O\nb M-PER\nc E-PER\n\nd B-LOC\ne O\n")
    corpus = read_corpus(path)
    assert corpus.transition_problems == [(2, "M-PER without an open B-PER"),
                                          (6, "B-LOC not closed by E-LOC before O")]
    with pytest.raises(DataError, match=r":2: invalid tag transition: M-PER without an open B-PER"):
        read_corpus(path, strict=True)


def run_check(*args):
    return subprocess.run([sys.executable, "-m", "data.check", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_check_command_reports_errors_without_traceback(tmp_path):
    bad = write(tmp_path, "a O\nb\n")
    result = run_check(bad)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {bad}:2: no tag: expected `character TAG`, got 'b'"
    assert "Traceback" not in result.stderr


def test_check_command_summarises_good_file(tmp_path):
    good = write(tmp_path, columns(" "))
    result = run_check(good)
    assert result.returncode == 0, result.stderr
    assert f"{good}: columns form, 2 sentences, 10 characters" in result.stdout
    assert "entities: LOC 1, ORG 1" in result.stdout
    assert "invalid transitions: 0" in result.stdout


def test_check_command_strict_exit_code(tmp_path):
    path = write(tmp_path, "a B-PER\nb O\n\nc S-LOC\n")
    assert run_check(path).returncode == 0
    strict = run_check(path, "--strict")
    assert strict.returncode == 2 and ":2: invalid tag transition" in strict.stderr


def test_bmes_to_bio_and_spans():
    tags = ["B-PER", "M-PER", "E-PER", "O", "S-LOC", "B-ORG", "E-ORG"]
    assert bmes_to_bio(tags) == ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG"]
    assert entity_spans(tags) == [("PER", 0, 3), ("LOC", 4, 5), ("ORG", 5, 7)]


def test_spans_of_ill_formed_sequences_follow_seqeval():
    from seqeval.metrics.sequence_labeling import get_entities

    rng = np.random.default_rng(0)
    vocabulary = ["O", "B-A", "M-A", "E-A", "S-A", "B-B", "M-B", "E-B", "S-B"]
    for _ in range(500):
        tags = list(rng.choice(vocabulary, size=rng.integers(0, 12)))
        ours = [(t, s, e - 1) for t, s, e in entity_spans(tags)]
        assert ours == get_entities(bmes_to_bio(tags)), tags


def test_invalid_transitions_of_valid_sequence_is_empty():
    assert invalid_transitions(["S-A", "B-A", "M-A", "E-A", "O", "B-B", "E-B"]) == []


def test_tag_set_comes_from_data_in_stable_order():
    assert tag_set([["O", "E-ZZ", "B-ZZ"], ["S-AA", "M-ZZ"]]) == ["O", "S-AA", "B-ZZ", "M-ZZ", "E-ZZ"]


def test_unknown_characters_map_to_unk_never_dropped():
    chars = CharVocab.build(["abc", "ab"], min_count=2)
    assert chars.tokens == ["<pad>", "<unk>", "a", "b"]
    assert chars.encode("abzc😀").tolist() == [2, 3, UNK_ID, UNK_ID, UNK_ID]


def test_bigram_vocab_encodes_pairs_and_end():
    bigrams = BigramVocab.build(["abab", "ab"], min_count=2)
    ids = bigrams.encode("abx")
    assert len(ids) == 3
    assert bigrams.tokens[ids[0]] == "ab"
    assert ids[1] == UNK_ID  # "bx" unseen
    assert ids[2] == UNK_ID  # "x" + end unseen
    assert bigrams.tokens[bigrams.encode("b")[0]] == "b"  # "b" then end, seen twice
    assert bigrams.encode("").tolist() == []


def test_vectorised_spans_equal_entity_spans():
    from data.corpus.tags import TagCodes, spans_of_ids

    tags = ["O", "B-A", "M-A", "E-A", "S-A", "B-B", "M-B", "E-B", "S-B"]
    codes = TagCodes(tags)
    rng = np.random.default_rng(1)
    for _ in range(200):
        sequences = [rng.integers(0, len(tags), size=rng.integers(0, 9)) for _ in range(5)]
        lengths = np.array([len(s) for s in sequences])
        got = spans_of_ids(codes, np.concatenate(sequences).astype(np.int64), lengths)
        expected = [(i, t, s, e) for i, seq in enumerate(sequences)
                    for t, s, e in entity_spans([tags[k] for k in seq])]
        assert [(int(i), codes.types[t], int(s), int(e)) for i, t, s, e in zip(*got)] == expected


def test_padded_encoding_equals_per_text_encoding():
    texts = ["abc", "", "ba", "c😀a"]
    chars = CharVocab.build(texts)
    bigrams = BigramVocab.build(texts + ["ab", "c😀"], min_count=1)
    from data.encoding.inputs import InputEncoder

    inputs = InputEncoder(chars, bigrams).encode_padded(texts, 5)
    for name, vocab in (("char_ids", chars), ("bigram_ids", bigrams)):
        padded = inputs[name]
        assert padded.shape == (4, 5)
        for row, text in enumerate(texts):
            assert padded[row, :len(text)].tolist() == vocab.encode(text).tolist()
            assert (padded[row, len(text):] == 0).all()


def test_bigram_ids_equal_a_dictionary_lookup_on_random_text():
    """The bigram vocabulary's hash table against a plain dict, with an alphabet small enough
    that most pairs are known and large enough that slots collide and probe on."""
    rng = np.random.default_rng(3)
    alphabet = list("abcdefghij上海北京市😀")
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 30))) for _ in range(300)]
    bigrams = BigramVocab.build(texts[:150], min_count=1)
    index = {token: i for i, token in enumerate(bigrams.tokens)}
    for text in texts:
        expected = [index.get(text[i:i + 2], UNK_ID) for i in range(len(text))]
        assert bigrams.encode(text).tolist() == expected


def test_hash_table_equals_a_dictionary_and_merges_repeated_keys():
    from data.lexicon.hashing import HashTable

    rng = np.random.default_rng(5)
    keys = rng.integers(0, 2**63, size=5000, dtype=np.int64).astype(np.uint64)
    keys[4000:] = keys[:1000]  # repeats: a key repeated with -1 keeps its value >= 0
    values = np.arange(5000, dtype=np.int64)
    values[4000:] = -1
    table = HashTable(keys, values)
    expected = {int(k): int(v) for k, v in zip(keys[:4000], values[:4000])}
    absent = rng.integers(0, 2**63, size=5000, dtype=np.int64).astype(np.uint64)
    queries = np.concatenate([keys, absent])
    got = table.lookup(queries).tolist()
    assert got == [expected.get(int(q), HashTable.ABSENT) for q in queries]
    with pytest.raises(ValueError, match="share a hash"):
        HashTable(np.array([7, 7], np.uint64), np.array([0, 1]))
