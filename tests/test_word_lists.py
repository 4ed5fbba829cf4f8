"""Users' word lists at tagging time: --words (lexicon features) and --force-words (decoding)."""
import json

import numpy as np
import pytest

from data.corpus.formats import read_corpus
from data.lexicon.words import merge_lexicons, read_word_list
from data.lexicon.features import FLAGS, LENGTH_BUCKETS, SETS, LexiconFeatures
from data.corpus.tags import entity_spans, invalid_transitions
from tests.conftest import FIXTURES, run_module

pytestmark = pytest.mark.slow

NEW_WORD = "翟鑫鑫"  # in neither jieba nor the fixture's training entities


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lists")
    files = {
        "words": f"# people\n{NEW_WORD} 5 PER\n北京大学 LOC\n",
        "force": f"{NEW_WORD} PER\n北京大学 ORG\n北京 LOC\n上海 LOC\n",
        "bad_class": f"{NEW_WORD} PER\n阿司匹林 DRUG\n",
        "bad_line": f"{NEW_WORD} 1 PER extra\n",
        "bad_type": "北京 PROPER\n",
        "untyped_force": "北京\n",
    }
    for name, text in files.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return {name: folder / f"{name}.txt" for name in files}


@pytest.fixture(scope="module")
def plain(exported):
    from serve.tagger import Tagger
    return Tagger.load(exported[0])


def flags_of(encoder, texts):
    flat, _ = encoder.encode_flat(texts)
    features = encoder.lexicon
    return flat[FLAGS].reshape(-1, len(SETS), features.num_classes + LENGTH_BUCKETS +
                               features.frequency_classes)


def test_added_words_read_as_if_they_were_in_the_lexicon(exported, plain, lists):
    from serve.tagger import Tagger
    tagger = Tagger.load(exported[0], words=lists["words"])
    assert tagger.words_added == 2
    texts = [f"昨天{NEW_WORD}去了北京大学。", "没有新词的句子。"]
    # feature parity: the same as features built the training way over the merged lexicon
    model = plain.encoder.lexicon
    merged = merge_lexicons([model.lexicon, read_word_list(lists["words"])])
    as_trained = LexiconFeatures(merged, model.kind, model.word_vocab, model.top_k,
                                 model.frequency_classes, model.char_prior_chars)
    points_flat, lengths = tagger.encoder.encode_flat(texts)
    from data.encoding.vocab import code_points
    expected = as_trained.encode_flat(code_points("".join(texts)).astype(np.int64), lengths)
    for name, rows in expected.items():
        np.testing.assert_array_equal(points_flat[name], rows)
    # and the change is exactly the new word's B/M/E flags of its class, and the retyping
    before, after = flags_of(plain.encoder, texts), flags_of(tagger.encoder, texts)
    names = model.lexicon.type_names
    changed = np.flatnonzero(np.any(before != after, axis=(1, 2)))
    word = list(range(2, 5))
    university = list(range(7, 11))
    assert set(changed) <= set(word + university)
    for offset, position in enumerate(word):
        member = ("B", "M", "E")[offset]
        assert after[position, SETS.index(member), names.index("PER")] == 1
        assert before[position, SETS.index(member)].sum() == 0 or \
            before[position, SETS.index(member), names.index("PER")] == 0
    first = university[0]
    assert after[first, SETS.index("B"), names.index("LOC")] == 1


def test_forced_words_decode_as_their_type_with_valid_tags_around(exported, lists):
    from serve.tagger import Tagger
    tagger = Tagger.load(exported[0], force_words=lists["force"])
    sentences = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences[:60]]
    rng = np.random.default_rng(0)
    texts = []
    for text in sentences:  # insert forced words at random places
        for word in ("北京大学", NEW_WORD, "上海"):
            cut = int(rng.integers(0, len(text) + 1))
            text = text[:cut] + word + text[cut:]
        texts.append(text)
    texts.append("北京大学北京" + "上" * 300 + "海北京")  # adjacent, and across a piece cut
    for text, tags in zip(texts, tagger.tag_bmeo(texts)):
        spans = {(s.start, s.end): s.type for s in entity_spans(tags)}
        position = 0
        while position < len(text):  # leftmost-longest occurrences
            for word, word_type in (("北京大学", "ORG"), (NEW_WORD, "PER"), ("上海", "LOC"),
                                    ("北京", "LOC")):
                if text.startswith(word, position):
                    assert spans.get((position, position + len(word))) == word_type, text
                    before = tags[position - 1] if position else "O"
                    after = tags[position + len(word)] if position + len(word) < len(text) \
                        else "O"
                    assert before[0] not in "BM" and after[0] not in "ME"
                    position += len(word)
                    break
            else:
                position += 1
        problems = invalid_transitions(tags)
        # wherever the model itself leaves the grammar, it is away from the forced words
        assert all(not any(text.startswith(w, p - len(w)) or text.startswith(w, p)
                           for w in ("北京大学", NEW_WORD, "上海")) for p, _ in problems)


@pytest.mark.parametrize("flag, name, message", [
    ("--words", "bad_class", ":2: type 'DRUG' is not one of this model's lexicon classes "
                             "(OTHER, PER, LOC, ORG, PROPER)"),
    ("--words", "bad_line", ":1: 4 fields: expected `word [frequency] [type]`, got "
                            "'翟鑫鑫 1 PER extra'"),
    ("--force-words", "bad_type", ":1: type 'PROPER' is not one of this model's entity types "
                                  "(LOC, ORG, PER)"),
    ("--force-words", "untyped_force", ":1: '北京' has no type: give one of this model's "
                                       "entity types (LOC, ORG, PER)"),
])
@pytest.mark.parametrize("command", ["serve.tag", "serve.evaluate", "serve.http",
                                     "serve.distributed"])
def test_bad_lists_are_one_line_and_exit_2(exported, lists, tmp_path, flag, name, message,
                                           command):
    args = {"serve.tag": [FIXTURES / "dev.txt"],
            "serve.evaluate": ["--data", FIXTURES / "dev.txt"],
            "serve.http": ["--port", "1"],  # refused before any port is opened
            "serve.distributed": [FIXTURES / "dev.txt", "--out", tmp_path / "out"]}[command]
    result = run_module(command, "--model", exported[0], flag, lists[name], *args)
    assert result.returncode == 2
    assert result.stderr == f"error: {lists[name]}{message}\n"
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("flag", ["--words", "--force-words"])
def test_a_list_path_that_is_a_folder_is_one_line_and_exit_2(exported, tmp_path, flag):
    result = run_module("serve.tag", "--model", exported[0], flag, tmp_path,
                        FIXTURES / "dev.txt")
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path}: is a folder, not a file\n"


def test_serve_tag_with_lists_equals_the_tagger(exported, lists, tmp_path):
    from serve.records import TagOptions, tag_records
    from serve.tagger import Tagger
    texts = [f"{NEW_WORD}在北京大学。", "", "上海和北京。"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    result = run_module("serve.tag", source, "--model", exported[0], "--words", lists["words"],
                        "--force-words", lists["force"], "--quiet")
    assert result.returncode == 0, result.stderr
    tagger = Tagger.load(exported[0], words=lists["words"], force_words=lists["force"])
    assert [json.loads(line) for line in result.stdout.splitlines()] == \
        tag_records(tagger, texts, TagOptions())
