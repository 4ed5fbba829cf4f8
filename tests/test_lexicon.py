"""The lexicon: reading word lists, the matcher against brute force, the features it feeds, and
the same inputs in training and serving."""
import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from data.corpus.formats import DataError, read_corpus
from data.lexicon.matcher import LexiconMatcher, add_words
from data.lexicon.words import (JIEBA_CLASS_NAMES, MAX_TYPE_CLASSES, Lexicon, load_lexicon,
                                merge_lexicons, read_word_list)
from data.lexicon.features import LENGTH_BUCKETS, SETS, LexiconFeatures, build_word_vocab
from tests.conftest import FIXTURES, ROOT, run_module


def brute_force_matches(texts, words):
    """{(text index, start, length, word id)} by enumerating every substring."""
    index = {word: i for i, word in enumerate(words)}
    longest = max(map(len, words))
    found = set()
    for t, text in enumerate(texts):
        for start in range(len(text)):
            for end in range(start + 1, min(len(text), start + longest) + 1):
                if text[start:end] in index:
                    found.add((t, start, end - start, index[text[start:end]]))
    return found


def matcher_matches(matcher, texts):
    result = matcher.match(texts)
    offsets = np.cumsum([len(t) for t in texts]) - [len(t) for t in texts]
    text_of = np.searchsorted(offsets, result.starts, side="right") - 1
    return {(int(t), int(s - offsets[t]), int(n), int(w))
            for t, s, n, w in zip(text_of, result.starts, result.lengths, result.word_ids)}


def random_lexicon(rng, alphabet, size):
    words = set()
    while len(words) < size:
        length = int(rng.integers(1, 7))
        words.add("".join(rng.choice(list(alphabet), length)))
    words = sorted(words)
    return Lexicon(words, rng.integers(1, 1000, len(words)).astype(float),
                   rng.integers(0, 3, len(words)).astype(np.int8), ["OTHER", "A", "B"], "random")


def random_texts(rng, alphabet, count):
    return ["".join(rng.choice(list(alphabet), int(rng.integers(0, 30)))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(6))
def test_matcher_equals_brute_force_on_random_texts_and_lexicons(seed):
    rng = np.random.default_rng(seed)
    alphabet = "abcd华东师范大学🙂"  # small alphabet: many overlapping matches; one non-BMP
    lexicon = random_lexicon(rng, alphabet, int(rng.integers(5, 200)))
    texts = random_texts(rng, alphabet, 40)
    expected = brute_force_matches(texts, lexicon.words)
    assert expected  # the case is not vacuous
    assert matcher_matches(LexiconMatcher(lexicon), texts) == expected


def test_matcher_equals_brute_force_with_jieba_on_real_text():
    lexicon = load_lexicon("jieba")
    texts = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences]
    expected = brute_force_matches(texts, lexicon.words)
    assert len(expected) > 1000
    assert matcher_matches(LexiconMatcher(lexicon), texts) == expected


def test_matches_never_cross_text_boundaries():
    lexicon = Lexicon(["ab", "b", "a"], np.ones(3), np.zeros(3, np.int8), ["OTHER"], "t")
    found = matcher_matches(LexiconMatcher(lexicon), ["a", "b", "", "ab"])
    assert found == {(0, 0, 1, 2), (1, 0, 1, 1), (3, 0, 2, 0), (3, 0, 1, 2), (3, 1, 1, 1)}


def brute_force_features(features, text):
    """Flags and top-k words of one text, by loops over its substrings."""
    lexicon = features.lexicon
    classes = len(lexicon.type_names)
    frequency_classes = features.frequency_classes
    # frequency class by counting: how many of the class cut points a word's frequency reaches
    cuts = sorted(np.quantile(lexicon.frequencies, [c / frequency_classes for c in
                                                    range(1, frequency_classes)]).tolist()) \
        if frequency_classes else []
    width = classes + LENGTH_BUCKETS + frequency_classes
    flags = np.zeros((len(text), len(SETS), width), np.uint8)
    members = defaultdict(list)  # (position, set) -> lexicon ids
    for _, start, length, word in brute_force_matches([text], lexicon.words):
        if length == 1:
            cells = [(start, 3)]
        else:
            cells = [(start, 0), (start + length - 1, 2)]
            cells += [(p, 1) for p in range(start + 1, start + length - 1)]
        for position, set_index in cells:
            flags[position, set_index, lexicon.type_ids[word]] = 1
            flags[position, set_index, classes + min(max(length, 2), 5) - 2] = 1
            if frequency_classes:
                rank = sum(lexicon.frequencies[word] >= cut for cut in cuts)
                flags[position, set_index, classes + LENGTH_BUCKETS + rank] = 1
            members[position, set_index].append(word)
    k = features.top_k
    ids = np.zeros((len(text), len(SETS), k), np.int32)
    weights = np.zeros((len(text), len(SETS), k), np.float32)
    for (position, set_index), words in members.items():
        strongest = sorted(words, key=lambda w: (-features.word_strength[w], w))[:k]
        for rank, word in enumerate(strongest):
            ids[position, set_index, rank] = features.model_word_ids[word]
            weights[position, set_index, rank] = features.word_strength[word]
    totals = weights.sum(axis=(1, 2), keepdims=True)
    weights = np.where(totals > 0, len(SETS) * weights / np.where(totals > 0, totals, 1), 0)
    n = len(text)
    return flags.reshape(n, len(SETS) * width), ids.reshape(n, len(SETS) * k), weights.reshape(n, len(SETS) * k)


@pytest.mark.parametrize("frequency_classes", [0, 3])
@pytest.mark.parametrize("seed", range(3))
def test_features_equal_brute_force(seed, frequency_classes):
    rng = np.random.default_rng(seed)
    alphabet = "abcde"
    lexicon = random_lexicon(rng, alphabet, 60)
    texts = random_texts(rng, alphabet, 25)
    vocab = build_word_vocab(LexiconMatcher(lexicon), texts[:10], min_count=2)
    features = LexiconFeatures(lexicon, "both", vocab, top_k=2,
                               frequency_classes=frequency_classes)
    from data.encoding.inputs import InputEncoder
    from data.encoding.vocab import CharVocab
    encoded = InputEncoder(CharVocab(list(alphabet)), None, features).encode_each(texts)
    for row, text in enumerate(texts):
        flags, ids, weights = brute_force_features(features, text)
        np.testing.assert_array_equal(encoded["lexicon_flags"][row], flags)
        np.testing.assert_array_equal(encoded["lexicon_word_ids"][row], ids)
        np.testing.assert_allclose(encoded["lexicon_word_weights"][row], weights, rtol=1e-6)


def test_frequency_classes_split_the_lexicon_in_equal_shares_and_survive_export_metadata():
    from data.encoding.inputs import InputEncoder, encoder_from_metadata, encoder_metadata
    from data.lexicon.features import frequency_class_of
    from data.encoding.vocab import CharVocab

    frequencies = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9])
    assert frequency_class_of(frequencies, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert frequency_class_of(np.ones(4), 3).tolist() == [2, 2, 2, 2]  # no frequencies given
    lexicon = Lexicon(["上海", "北京"], np.array([1.0, 50.0]), np.zeros(2, np.int8), ["OTHER"], "t")
    features = LexiconFeatures(lexicon, "flags", frequency_classes=2)
    assert features.num_flags == len(SETS) * (1 + LENGTH_BUCKETS + 2)
    encoder = InputEncoder(CharVocab(list("上海北京")), None, features)
    served = encoder_from_metadata(encoder_metadata(encoder))
    assert served.lexicon.frequency_classes == 2
    flags = served.encode_flat(["上海北京"])[0]["lexicon_flags"].reshape(4, len(SETS), -1)
    assert flags[0, 0, -2:].tolist() == [1, 0]  # 上海 (B): the rarer class
    assert flags[2, 0, -2:].tolist() == [0, 1]  # 北京 (B): the commoner class


def test_word_vocab_is_words_seen_in_training_text_often_enough():
    lexicon = Lexicon(["上海", "北京", "南京"], np.ones(3), np.array([2, 2, 2], np.int8),
                      JIEBA_CLASS_NAMES, "t")
    matcher = LexiconMatcher(lexicon)
    assert build_word_vocab(matcher, ["上海北京上海", "南京"], min_count=2) == ["上海"]
    features = LexiconFeatures(lexicon, "words", ["上海"], top_k=1)
    # unseen words share their class's row (1 + class id); vocabulary words come after
    assert features.model_word_ids.tolist() == [len(JIEBA_CLASS_NAMES) + 1, 3, 3]


def test_word_list_forms(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# drugs and places\n阿司匹林 120 DRUG\n\n上海 LOC\n布洛芬 7\n新冠\n"
                    "上海 99 ORG\n", encoding="utf-8")
    lexicon = read_word_list(path)
    # a repeated word keeps its first line; words are kept in code-point order
    assert lexicon.words == ["上海", "布洛芬", "新冠", "阿司匹林"]
    assert lexicon.frequencies.tolist() == [1, 7, 1, 120]
    assert lexicon.type_names == ["OTHER", "DRUG", "LOC"]
    assert [lexicon.type_names[i] for i in lexicon.type_ids] == ["LOC", "OTHER", "OTHER", "DRUG"]
    again = Lexicon.from_json(lexicon.to_json())
    assert again.words == lexicon.words and again.type_names == lexicon.type_names
    assert again.source == lexicon.source
    np.testing.assert_array_equal(again.frequencies, lexicon.frequencies)
    np.testing.assert_array_equal(again.type_ids, lexicon.type_ids)


@pytest.mark.parametrize("content, alike", [
    ("# c\n上海 3 LOC\n北京 2.5 LOC\n\n上海 9 ORG\n张三 1e3 PER\n", True),  # three fields
    ("上海 LOC\n北京 ORG\n上海 PER\n", True),  # word and type
    ("上海 4\n北京 0.5\n", True),  # word and frequency
    ("上海\n北京\n上海\n", True),  # words alone
    ("上海 LOC\n北京 5\n广州 3 LOC\n深圳\n", False),  # every form mixed
    ("上海 LOC\n北京 nan\n", False),  # a number among types: the line is named
    ("上海 1 LOC\n北京 2 DRUG\n", False),  # a refused type: the line is named
])
def test_lines_of_one_form_read_as_line_by_line(tmp_path, monkeypatch, content, alike):
    """The list-speed path for files whose lines share one form gives what reading line by
    line gives, errors included."""
    import data.lexicon.words as lexicon_module

    monkeypatch.setenv("NER_WORD_LIST_CACHE", "off")
    path = tmp_path / "words.txt"
    path.write_text(content, encoding="utf-8")

    def read():
        try:
            lexicon = read_word_list(path, ["LOC", "ORG", "PER"], "classes")
        except DataError as error:
            return str(error)
        return (lexicon.words, lexicon.frequencies.tolist(), lexicon.type_ids.tolist(),
                lexicon.type_names)

    line_by_line = lexicon_module._parse_rows
    if alike:  # read at list speed: never line by line
        monkeypatch.setattr(lexicon_module, "_parse_rows", None)
    fast = read()
    monkeypatch.setattr(lexicon_module, "_parse_rows", line_by_line)
    monkeypatch.setattr(lexicon_module, "_parse_alike_rows", lambda rows, accepted: None)
    assert fast == read()


def test_a_word_ending_in_nul_keeps_its_place_and_first_line(tmp_path, monkeypatch):
    """numpy's strings drop a trailing NUL, so such a list takes the dict's way: the same
    order and first lines as any other."""
    monkeypatch.setenv("NER_WORD_LIST_CACHE", "off")
    path = tmp_path / "words.txt"
    path.write_text("上海\0 3 LOC\n上海 2 ORG\n上海\0 9 PER\n北京 1 LOC\n", encoding="utf-8")
    lexicon = read_word_list(path)
    assert lexicon.words == ["上海", "上海\0", "北京"]
    assert lexicon.frequencies.tolist() == [2, 3, 1]
    assert [lexicon.type_names[i] for i in lexicon.type_ids] == ["ORG", "LOC", "LOC"]


def test_frequencies_survive_json_exactly_whether_or_not_float32_holds_them():
    for frequencies in ([1.0, 7.0, 3e6], [0.1, 2.5, 1e-3]):  # float32-exact, then not
        lexicon = Lexicon(["甲", "乙", "丙"], np.array(frequencies), np.zeros(3, np.int8),
                          ["OTHER"], "t")
        again = Lexicon.from_json(lexicon.to_json())
        assert again.frequencies.dtype == np.float64
        assert again.frequencies.tolist() == frequencies


def test_matcher_is_exact_whatever_the_stored_word_order():
    """Lexicons built from a source are in code-point order, which lets the build drop repeated
    prefixes by comparing neighbours; a lexicon stored in another order (older run folders and
    models) must still match exactly, through the hash table's merging of repeats."""
    rng = np.random.default_rng(7)
    alphabet = "abc上海市"
    lexicon = random_lexicon(rng, alphabet, 150)
    texts = random_texts(rng, alphabet, 40)
    order = rng.permutation(len(lexicon))
    shuffled = Lexicon([lexicon.words[i] for i in order], lexicon.frequencies[order],
                       lexicon.type_ids[order], lexicon.type_names, "shuffled")
    expected = brute_force_matches(texts, shuffled.words)
    assert matcher_matches(LexiconMatcher(shuffled), texts) == expected
    assert matcher_matches(LexiconMatcher(lexicon), texts) == brute_force_matches(texts,
                                                                                 lexicon.words)


@pytest.mark.parametrize("seed", range(4))
def test_a_lexicon_grown_at_load_matches_as_if_merged_before(seed):
    """add_words keeps the base's tables and builds the new words' only: its lexicon holds
    what merge_lexicons would, and its matches are every occurrence of every word."""
    rng = np.random.default_rng(seed)
    alphabet = "abcd华东师范🙂"
    base = random_lexicon(rng, alphabet, int(rng.integers(20, 150)))
    added = random_lexicon(rng, alphabet, int(rng.integers(5, 80)))
    added.type_names = ["OTHER", "B", "NEW"]  # a class the base lacks, one it has
    shared = set(base.words) & set(added.words)
    assert shared and set(added.words) - shared  # some words retyped, some new
    grown = add_words(LexiconMatcher(base), added)
    merged = merge_lexicons([base, added])

    def entries(lexicon):
        return {word: (lexicon.frequencies[i], lexicon.type_names[lexicon.type_ids[i]])
                for i, word in enumerate(lexicon.words)}

    assert entries(grown.lexicon) == entries(merged)
    assert grown.lexicon.words[:len(base)] == base.words  # the base's ids are kept
    texts = random_texts(rng, alphabet, 40)
    assert matcher_matches(grown, texts) == brute_force_matches(texts, grown.lexicon.words)
    found = LexiconMatcher(base).find(added)
    assert found.tolist() == [base.words.index(w) if w in base.words else -1
                              for w in added.words]


def test_word_lists_read_again_come_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NER_WORD_LIST_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "words.txt"
    path.write_text("# drugs\n阿司匹林 120 DRUG\n上海 LOC\n布洛芬 7\n", encoding="utf-8")
    first = read_word_list(path)
    stored = list((tmp_path / "cache").iterdir())
    assert len(stored) == 1
    import data.lexicon.words as lexicon_module

    monkeypatch.setattr(lexicon_module, "_parse_word_list", None)  # a parse would fail
    again = read_word_list(path, ["DRUG", "LOC"], "classes")
    assert (again.words, again.type_names, again.source) == \
        (first.words, first.type_names, first.source)
    np.testing.assert_array_equal(again.frequencies, first.frequencies)
    np.testing.assert_array_equal(again.type_ids, first.type_ids)
    monkeypatch.undo()
    monkeypatch.setenv("NER_WORD_LIST_CACHE", str(tmp_path / "cache"))
    # a cached list with a type this reader refuses is parsed again, to name the line
    with pytest.raises(DataError, match=f"^{path}:2: type 'DRUG' is not one of this model's "
                                        "classes \\(LOC, PER\\)"):
        read_word_list(path, ["LOC", "PER"], "classes")
    # a damaged cache file is parsed again and rewritten; an edited list is another entry
    stored[0].write_text("{not json", encoding="utf-8")
    assert read_word_list(path).words == first.words
    assert Lexicon.from_json(stored[0].read_text(encoding="utf-8")).words == first.words
    path.write_text("上海 LOC\n", encoding="utf-8")
    assert read_word_list(path).words == ["上海"]
    assert len(list((tmp_path / "cache").iterdir())) == 2


@pytest.mark.parametrize("setting", ["off", "a file, not a folder"])
def test_word_lists_read_without_a_usable_cache(tmp_path, monkeypatch, setting):
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("NER_WORD_LIST_CACHE", "off" if setting == "off" else str(blocker))
    path = tmp_path / "words.txt"
    path.write_text("上海 LOC\n", encoding="utf-8")
    assert read_word_list(path).words == read_word_list(path).words == ["上海"]
    assert blocker.read_text(encoding="utf-8") == ""


BAD_LEXICONS = [
    ("上海 1 LOC\n北京 2 LOC x\n", 2, "4 fields"),
    ("上海 1 LOC\n\n北京 many LOC\n", 3, "frequency 'many' is not a number"),
    ("上海 0\n", 1, "must be positive"),
    ("上海 -3 LOC\n", 1, "must be positive"),
    (b"\xe4\xb8\x8a\xe6\xb5\xb7\n\xff\xfe\n", 2, "invalid UTF-8"),
]


@pytest.mark.parametrize("content,line,message", BAD_LEXICONS,
                         ids=["fields", "frequency", "zero", "negative", "utf8"])
def test_bad_lexicon_line_is_named(tmp_path, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    with pytest.raises(DataError) as error:
        read_word_list(path)
    assert str(error.value).startswith(f"{path}:{line}: ") and message in str(error.value)


def test_a_list_that_is_a_folder_or_missing_is_named(tmp_path):
    for path, message in ((tmp_path, "is a folder, not a file"),
                          (tmp_path / "missing.txt", "no such file")):
        with pytest.raises(DataError) as error:
            read_word_list(path)
        assert str(error.value) == f"{path}: {message}"


def test_sources_joined_by_plus_merge_like_jieba_user_dictionaries(tmp_path):
    first, second = tmp_path / "general.txt", tmp_path / "domain+drugs.txt"
    first.write_text("北京 30 LOC\n阿司匹林 4\n上海 7 LOC\n张三 2 PER\n", encoding="utf-8")
    second.write_text("阿司匹林 DRUG\n北京 2\n布洛芬 5 DRUG\n张三 9 PER\n", encoding="utf-8")
    merged = load_lexicon(f"{first}+{second}")
    assert merged.source == "general.txt+domain+drugs.txt"
    assert merged.type_names == ["OTHER", "LOC", "PER", "DRUG"]
    assert merged.words == sorted(merged.words) == ["上海", "北京", "布洛芬", "张三", "阿司匹林"]
    entries = {word: (merged.frequencies[i], merged.type_names[merged.type_ids[i]])
               for i, word in enumerate(merged.words)}
    # the highest frequency; the last given type, never replaced by an untyped entry (OTHER)
    assert entries == {"上海": (7.0, "LOC"), "北京": (30.0, "LOC"), "布洛芬": (5.0, "DRUG"),
                       "张三": (9.0, "PER"), "阿司匹林": (4.0, "DRUG")}
    # a path that itself holds `+` is one file, not two
    assert load_lexicon(str(second)).source == "domain+drugs.txt"
    # the merged lexicon matches exactly, like any other
    texts = ["北京的张三买了阿司匹林和布洛芬", "上海北京"]
    found = LexiconMatcher(merged).match(texts)
    flat_found = {(int(s), int(n), int(w)) for s, n, w in
                  zip(found.starts, found.lengths, found.word_ids)}
    offsets = np.cumsum([0] + [len(t) for t in texts])
    assert flat_found == {(offsets[t] + start, length, word) for t, start, length, word
                          in brute_force_matches(texts, merged.words)}


def test_merged_sources_keep_their_errors(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("上海 1 LOC\n", encoding="utf-8")
    bad.write_text("北京 1 LOC\n广州 x LOC\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"^{bad}:2: frequency 'x' is not a number"):
        load_lexicon(f"{good}+{bad}")
    with pytest.raises(DataError, match="no such lexicon file"):
        load_lexicon(f"{good}+{tmp_path / 'missing.txt'}")
    for choice in (f"{good}+", f"+{good}", f"{good}+none"):
        with pytest.raises(DataError, match="joined by `[+]`"):
            load_lexicon(choice)


def test_too_many_word_types_is_an_error_not_an_overflow(tmp_path):
    path = tmp_path / "types.txt"
    path.write_text("".join(f"词{i} T{i}\n" for i in range(MAX_TYPE_CLASSES)), encoding="utf-8")
    with pytest.raises(DataError, match=f"{MAX_TYPE_CLASSES + 1} word types"):
        read_word_list(path)  # OTHER plus the file's 127
    few = [Lexicon([f"词{i}"], np.ones(1), np.zeros(1, np.int8), [f"T{i}"], f"s{i}")
           for i in range(MAX_TYPE_CLASSES)]
    with pytest.raises(DataError, match=f"{MAX_TYPE_CLASSES + 1} word types"):
        merge_lexicons(few)


def test_bad_lexicon_line_stops_training_with_file_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("上海 1 LOC\n北京 two LOC\n", encoding="utf-8")
    result = run_module("pipeline.train", "--train", FIXTURES / "train.txt", "--dev",
                        FIXTURES / "dev.txt", "--out", tmp_path / "run", "--lexicon", path)
    assert result.returncode == 2
    assert f"error: {path}:2: frequency 'two' is not a number" in result.stderr
    assert "Traceback" not in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    result = run_module("pipeline.train", "--train", FIXTURES / "train.txt", "--dev",
                        FIXTURES / "dev.txt", "--out", tmp_path / "run2", "--lexicon", empty)
    assert result.returncode == 2 and f"{empty}: empty lexicon" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_module("pipeline.train", "--train", FIXTURES / "train.txt", "--dev",
                        FIXTURES / "dev.txt", "--out", tmp_path / "run3", "--lexicon",
                        f"jieba+{path}")
    assert result.returncode == 2
    assert f"error: {path}:2: frequency 'two' is not a number" in result.stderr
    assert "Traceback" not in result.stderr


# -- train = serve ----------------------------------------------------------------------------
@pytest.mark.slow
def test_training_and_serving_feed_the_model_the_same_inputs(trained_run, exported):
    """The tf.data side (encode_corpus + batch_arrays, from the run folder) and the Tagger
    (from the ONNX file's metadata alone) build identical inputs for the same sentences."""
    pytest.importorskip("tensorflow")
    from training.tf_input import batch_arrays, encode_corpus
    from training.run_files import load_vocabularies
    from serve.tagger import Tagger

    run, _ = trained_run
    encoder, tags = load_vocabularies(run)
    assert encoder.lexicon is not None and encoder.lexicon.num_flags > 0  # the default: jieba
    sentences = read_corpus(FIXTURES / "dev.txt").sentences[:40]
    corpus = encode_corpus(sentences, encoder, tags)
    tagger = Tagger.load(exported[0])
    for indices in (np.arange(5), np.array([3, 17, 39, 0])):
        training_inputs, _ = batch_arrays(corpus, indices)
        served_inputs = tagger.encoder.encode_padded([sentences[i].text for i in indices])
        assert training_inputs.keys() == served_inputs.keys()
        assert "lexicon_flags" in served_inputs
        for name in training_inputs:
            assert training_inputs[name].dtype == served_inputs[name].dtype, name
            np.testing.assert_array_equal(training_inputs[name], served_inputs[name])


NO_LEXICON_FILE_READ = """
import sys
def refuse(event, args):
    path = args[0] if event == "open" and isinstance(args[0], str) else ""
    if "jieba" in path or path.endswith(("lexicon.json", "dict.txt")):
        raise RuntimeError("serving opened a lexicon file: " + args[0])
sys.addaudithook(refuse)
from serve.tag import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_exported_file_alone_tags_with_its_lexicon(exported, tmp_path):
    """A fresh process in an empty folder, which may open no lexicon file: the .onnx carries
    the lexicon, and the tags equal the in-process Tagger's."""
    import shutil

    from serve.tagger import Tagger

    model = tmp_path / "alone.onnx"
    shutil.copy(exported[0], model)
    texts = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences[:30]]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", NO_LEXICON_FILE_READ, str(source), "--model",
                             str(model), "--format", "bmeo"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = [" ".join(tags) for tags in Tagger.load(model).tag_bmeo(texts)]
    assert result.stdout.splitlines() == expected
    metadata = Tagger.load(model).metadata
    assert json.loads(metadata["ner.lexicon"])["source"] == "jieba-0.42.1"


@pytest.mark.slow
def test_no_lexicon_trains_exports_and_serves(tmp_path):
    from tests.conftest import train_command

    run = tmp_path / "plain"
    result = subprocess.run(train_command(run, 1, "--no-lexicon"), capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (run / "lexicon.json").exists()
    assert json.loads((run / "vocab.json").read_text())["lexicon_features"] is None
    model = tmp_path / "plain.onnx"
    result = run_module("export.to_onnx", "--run", run, "--out", model)
    assert result.returncode == 0 and "validation passed" in result.stdout, result.stderr[-2000:]
    import onnx
    assert sorted(value.name for value in onnx.load(model).graph.input) == ["bigram_ids",
                                                                             "char_ids"]
    result = run_module("serve.tag", FIXTURES / "dev.txt", "--model", model, "--format", "bmeo")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (FIXTURES / "dev.txt").read_text(encoding="utf-8").split("\n")
    assert len(result.stdout.splitlines()) == len(lines) - 1


@pytest.mark.parametrize("words", [["ab", "ba"], ["ab", "ac", "ba"], ["ba", "ac", "ab"]])
def test_matcher_refuses_two_words_sharing_a_hash(monkeypatch, words):
    """With a deliberately weak hash (a sum: `ab` = `ba`), the build must refuse rather than
    lose a word, whether the colliding words are neighbours or not, in any stored order."""
    import data.lexicon.matcher as lexicon_module

    monkeypatch.setattr(lexicon_module, "_extend",
                        lambda hashes, points: hashes + points.astype(np.uint64))
    lexicon = Lexicon(words, np.ones(len(words)), np.zeros(len(words), np.int8), ["OTHER"], "t")
    with pytest.raises(ValueError, match="share a hash"):
        LexiconMatcher(lexicon)


def test_windows_of_two_characters_never_share_a_hash():
    """The matcher compares characters only for windows longer than INJECTIVE_LENGTHS: two
    windows of one or two code points hash alike only if (a - a') * base = b' - b (mod 2^64)
    for some |a - a'|, |b - b'| <= 0x10FFFF, which no difference within that range gives."""
    from data.lexicon.matcher import _HASH_BASE, INJECTIVE_LENGTHS

    assert INJECTIVE_LENGTHS == 2
    differences = np.arange(1, 0x110000, dtype=np.uint64)
    with np.errstate(over="ignore"):
        residues = (differences * _HASH_BASE).view(np.int64)
    assert np.abs(residues).min() > 0x10FFFF


def test_longer_windows_are_compared_character_by_character(monkeypatch):
    """With a weak hash (a sum), `cba` hashes as `abc` does: the comparison must drop it."""
    import data.lexicon.matcher as lexicon_module

    monkeypatch.setattr(lexicon_module, "_extend",
                        lambda hashes, points: hashes + points.astype(np.uint64) + np.uint64(1))
    lexicon = Lexicon(["abc", "xyzw"], np.ones(2), np.zeros(2, np.int8), ["OTHER"], "t")
    assert matcher_matches(LexiconMatcher(lexicon), ["cba abc wzyx xyzw"]) == \
        {(0, 4, 3, 0), (0, 13, 4, 1)}


def test_a_grown_lexicon_is_read_back_from_the_cache(tmp_path, monkeypatch):
    """The second load of the same list onto the same base takes the found ids and the new
    words' tables from the cache (finding and building would fail) and matches the same; a
    damaged cache file is built anew; another base is another entry."""
    import data.lexicon.matcher as lexicon_module

    monkeypatch.setenv("NER_WORD_LIST_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(7)
    alphabet = "abcd华东师范🙂"
    base = random_lexicon(rng, alphabet, 120)
    added = random_lexicon(rng, alphabet, 60)
    texts = random_texts(rng, alphabet, 40)
    first = add_words(LexiconMatcher(base), added)
    stored = list((tmp_path / "cache").glob("*.npz"))
    assert len(stored) == 1
    base_matcher = LexiconMatcher(base)  # built before the patch: its own tables
    with monkeypatch.context() as patched:
        patched.setattr(LexiconMatcher, "find", None)
        patched.setattr(lexicon_module.WordTables, "__init__", None)
        again = add_words(base_matcher, added)
    assert again.lexicon.words == first.lexicon.words
    np.testing.assert_array_equal(again.lexicon.type_ids, first.lexicon.type_ids)
    np.testing.assert_array_equal(again.lexicon.frequencies, first.lexicon.frequencies)
    expected = brute_force_matches(texts, first.lexicon.words)
    assert matcher_matches(again, texts) == matcher_matches(first, texts) == expected
    stored[0].write_bytes(b"PK damaged")
    assert matcher_matches(add_words(LexiconMatcher(base), added), texts) == expected
    assert np.load(stored[0])["where"].size == len(added)  # rewritten whole
    other_base = random_lexicon(rng, alphabet, 50)
    add_words(LexiconMatcher(other_base), added)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


# -- char priors ------------------------------------------------------------------------------
def brute_force_char_priors(lexicon):
    """{char: row} by walking every character of every word."""
    classes = len(lexicon.type_names)
    counts = defaultdict(lambda: np.zeros(classes * len(SETS)))
    for word, type_id in zip(lexicon.words, lexicon.type_ids):
        for offset, char in enumerate(word):
            position = 3 if len(word) == 1 else 0 if offset == 0 else \
                2 if offset == len(word) - 1 else 1
            counts[char][int(type_id) * len(SETS) + position] += 1
    most = max(row.sum() for row in counts.values())
    return {char: np.append(row / (1 + row.sum()), np.log1p(row.sum()) / np.log1p(most))
            for char, row in counts.items()}


@pytest.mark.parametrize("seed", range(3))
def test_char_prior_table_equals_counting_by_hand(seed):
    from data.lexicon.features import char_prior_table

    lexicon = random_lexicon(np.random.default_rng(seed), "abcdefg", 40)
    chars, table = char_prior_table(lexicon)
    expected = brute_force_char_priors(lexicon)
    assert chars == "".join(sorted(expected))
    assert table.shape == (len(chars) + 2, 3 * len(SETS) + 1)
    assert not table[:2].any()  # padding, and a character in no word
    for row, char in enumerate(chars, 2):
        np.testing.assert_allclose(table[row], expected[char], rtol=1e-6)


def test_char_priors_are_row_ids_that_survive_export_metadata():
    from data.encoding.inputs import InputEncoder, encoder_from_metadata, encoder_metadata
    from data.lexicon.features import CHAR_PRIOR_IDS, char_prior_table
    from data.encoding.vocab import CharVocab

    lexicon = Lexicon(["上海", "王明", "北京"], np.ones(3), np.array([2, 1, 2], np.int8),
                      JIEBA_CLASS_NAMES, "t")
    chars, table = char_prior_table(lexicon)
    assert chars == "上京北明海王"  # code-point order
    features = LexiconFeatures(lexicon, "flags", char_prior_chars=chars)
    encoder = InputEncoder(CharVocab(list("上海")), None, features)
    served = encoder_from_metadata(encoder_metadata(encoder))
    ids = served.encode_flat(["王在上海", "京"])[0][CHAR_PRIOR_IDS]
    # 在 is in no word: row 1 (zeros); the others their own rows, though 王 is not in the
    # model's character vocabulary (that is the point: it still has priors)
    assert ids.tolist() == [2 + chars.index("王"), 1, 2, 2 + chars.index("海"), 3]
    assert table[2 + chars.index("王"), 1 * len(SETS) + 0] == 0.5  # B of a PER word, 1 / (1+1)
    assert encoder.input_shapes()[CHAR_PRIOR_IDS] == (None, "int32")
    without = encoder_from_metadata(encoder_metadata(
        InputEncoder(CharVocab(list("上海")), None, LexiconFeatures(lexicon, "flags"))))
    assert CHAR_PRIOR_IDS not in without.encode_flat(["上海"])[0]


@pytest.mark.slow
def test_char_priors_train_export_and_serve_with_a_frozen_table(trained_run, exported):
    """The tiny default run has under 150k training characters, so "auto" turned char priors
    on and the saved config says so; the table inside the exported model is the lexicon's,
    unchanged by training; the file alone serves (export validation compared it to Keras)."""
    from data.lexicon.features import CHAR_PRIOR_IDS, char_prior_table
    from serve.tagger import Tagger

    run, _ = trained_run
    assert json.loads((run / "config.json").read_text())["lexicon_char_priors"] == "on"
    import onnx
    from onnx import numpy_helper
    graph = onnx.load(exported[0]).graph
    assert CHAR_PRIOR_IDS in [value.name for value in graph.input]
    _, table = char_prior_table(load_lexicon("jieba"))
    stored = [numpy_helper.to_array(init) for init in graph.initializer
              if tuple(init.dims) == table.shape]
    assert len(stored) == 1 and np.array_equal(stored[0], table)
    texts = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences[:20]]
    result = run_module("serve.tag", "-", "--model", exported[0], "--format", "bmeo",
                        input="\n".join(texts) + "\n")
    assert result.returncode == 0, result.stderr[-2000:]
    tagger = Tagger.load(exported[0])
    assert result.stdout.splitlines() == [" ".join(t) for t in tagger.tag_bmeo(texts)]


def test_char_priors_auto_turns_on_for_small_training_text_only():
    from models.config import CHAR_PRIORS_AUTO_CHARS, TrainConfig

    assert TrainConfig().lexicon_char_priors == "auto"
    small, large = TrainConfig(), TrainConfig()
    assert small.resolve_char_priors(CHAR_PRIORS_AUTO_CHARS - 1) is True
    assert large.resolve_char_priors(CHAR_PRIORS_AUTO_CHARS) is False
    assert (small.lexicon_char_priors, large.lexicon_char_priors) == ("on", "off")  # recorded
    assert TrainConfig(lexicon="none").resolve_char_priors(10) is False
    assert TrainConfig(lexicon_char_priors="on").resolve_char_priors(10**9) is True
    with pytest.raises(ValueError, match="needs lexicon features"):
        TrainConfig(lexicon="none", lexicon_char_priors="on").resolve_char_priors(10)


@pytest.mark.parametrize("stored, loaded", [(None, "off"), (False, "off"), (True, "on"),
                                            ("auto", "auto")])
def test_runs_saved_before_auto_char_priors_keep_their_choice(tmp_path, stored, loaded):
    from dataclasses import asdict

    from models.config import TrainConfig

    values = asdict(TrainConfig())
    del values["lexicon_char_priors"]
    if stored is not None:
        values["lexicon_char_priors"] = stored
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    assert TrainConfig.load(path).lexicon_char_priors == loaded


def test_char_priors_without_a_lexicon_is_a_clear_error(tmp_path):
    result = run_module("pipeline.train", "--train", FIXTURES / "train.txt", "--dev",
                        FIXTURES / "dev.txt", "--out", tmp_path / "run", "--no-lexicon",
                        "--lexicon-char-priors", "on")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: char priors come from the lexicon" in result.stderr


# -- training entities in the lexicon ---------------------------------------------------------
def tagged(text, *spans):
    """A Sentence of `text` with (start, end, type) entities in BMES."""
    from data.corpus.formats import Sentence

    tags = ["O"] * len(text)
    for start, end, kind in spans:
        if end - start == 1:
            tags[start] = f"S-{kind}"
        else:
            tags[start:end] = [f"B-{kind}"] + [f"M-{kind}"] * (end - start - 2) + [f"E-{kind}"]
    return Sentence(text, tags, 1)


def test_entity_lexicon_takes_each_names_most_frequent_type():
    from data.lexicon.train_entities import entity_lexicon

    sentences = [tagged("华为在深圳", (0, 2, "ORG"), (3, 5, "LOC")),
                 tagged("深圳华为", (0, 2, "LOC"), (2, 4, "ORG")),
                 tagged("华为", (0, 2, "LOC")), tagged("王", (0, 1, "PER"))]
    lexicon = entity_lexicon(sentences, ["OTHER", "PER", "LOC", "ORG", "DRUG"])
    found = {w: (lexicon.type_names[t], f) for w, t, f in
             zip(lexicon.words, lexicon.type_ids, lexicon.frequencies)}
    assert found == {"华为": ("ORG", 2.0), "深圳": ("LOC", 2.0), "王": ("PER", 1.0)}
    assert lexicon.type_names == ["OTHER", "PER", "LOC", "ORG", "DRUG"]  # all kept: folds agree
    tie = entity_lexicon([tagged("华为", (0, 2, "ORG")), tagged("华为", (0, 2, "LOC"))],
                         ["OTHER", "LOC", "ORG"])
    assert tie.type_names[tie.type_ids[0]] == "LOC"  # a tie: the type listed first


def test_each_fold_sees_the_other_folds_entities_only():
    from data.lexicon.train_entities import fold_bounds, fold_lexicons, with_train_entities

    assert fold_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    base = Lexicon(["中国"], np.ones(1), np.array([0], np.int8), JIEBA_CLASS_NAMES, "base")
    sentences = [tagged("张三来了", (0, 2, "PER")), tagged("李四来了", (0, 2, "PER")),
                 tagged("张三走了", (0, 2, "PER")), tagged("中国药", (0, 3, "DRUG"))]
    folds = fold_lexicons(base, sentences, 2)
    assert [(start, end) for start, end, _ in folds] == [(0, 2), (2, 4)]
    assert folds[0][2].words == ["中国", "中国药", "张三"]  # fold 2's entities
    assert folds[1][2].words == ["中国", "张三", "李四"]  # fold 1's
    full = with_train_entities(base, sentences, 2)
    assert full.words == ["中国", "中国药", "张三", "李四"]
    assert full.source == "base+train-entities"
    # a type the data adds is a class of every fold's lexicon, used or not: same flag width
    assert all(lexicon.type_names == full.type_names == JIEBA_CLASS_NAMES + ["DRUG"]
               for _, _, lexicon in folds)


def test_training_folds_are_encoded_with_the_other_folds_entities(tmp_path):
    """A name seen in one fold only gets no typed flag in that fold's training rows, one
    in dev's (which, as serving, sees every training entity); a name two folds share gets
    its flag in both."""
    pytest.importorskip("tensorflow")
    from data.corpus.formats import Corpus
    from data.lexicon.features import FLAGS
    from models.config import TrainConfig
    from training.tf_input import encode_corpus
    from training.loop import build_vocabularies, encode_training

    words = tmp_path / "words.txt"
    words.write_text("来了\n", encoding="utf-8")
    sentences = [tagged("张三来了", (0, 2, "PER")), tagged("李四来了", (0, 2, "PER")),
                 tagged("张三走了", (0, 2, "PER")), tagged("王五走了", (0, 2, "PER"))]
    config = TrainConfig(lexicon=str(words), lexicon_train_entities=2,
                         lexicon_char_priors="off")
    corpora = {"train": Corpus("t", sentences), "dev": Corpus("d", sentences)}
    encoder, tags = build_vocabularies(config, corpora)
    per = encoder.lexicon.lexicon.type_names.index("PER")

    def begins_a_per_word(rows):  # each first character's PER flag in its B set (columns
        return [bool(row[0][per]) for row in rows]  # of the B set come first)

    trained = encode_training(config, sentences, encoder, tags, log=lambda line: None)
    dev = encode_corpus(sentences, encoder, tags)
    assert begins_a_per_word(trained.inputs[FLAGS]) == [True, False, True, False]
    assert begins_a_per_word(dev.inputs[FLAGS]) == [True, True, True, True]
    assert trained.texts == dev.texts and all(
        np.array_equal(a, b) for a, b in zip(trained.tag_ids, dev.tag_ids))


@pytest.mark.slow
def test_training_entities_travel_in_the_exported_lexicon(tmp_path):
    from tests.conftest import train_command

    from serve.tagger import Tagger

    run = tmp_path / "entities"
    result = subprocess.run(train_command(run, 1, "--lexicon-train-entities", "2"),
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 folds, each encoded with the others' entities" in result.stdout
    model = tmp_path / "entities.onnx"
    result = run_module("export.to_onnx", "--run", run, "--out", model)
    assert result.returncode == 0 and "validation passed" in result.stdout, result.stderr[-2000:]
    lexicon = Lexicon.from_json(Tagger.load(model).metadata["ner.lexicon"])
    assert lexicon.source == "jieba-0.42.1+train-entities"
    from data.lexicon.train_entities import entity_lexicon
    entities = entity_lexicon(read_corpus(FIXTURES / "train.txt").sentences,
                              lexicon.type_names)
    index = dict(zip(lexicon.words, lexicon.type_ids))
    assert all(index[word] == type_id for word, type_id in
               zip(entities.words, entities.type_ids))


@pytest.mark.parametrize("folds", ["1", "-3", "999"])
def test_impossible_fold_counts_are_a_clear_error(tmp_path, folds):
    result = run_module("pipeline.train", "--train", FIXTURES / "train.txt", "--dev",
                        FIXTURES / "dev.txt", "--out", tmp_path / "run", "--epochs", "1",
                        "--lexicon-train-entities", folds)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"error: --lexicon-train-entities {folds}: the folds must number at least 2" \
        in result.stderr
