"""Entity scores: the CRF probability of exactly a span's tags, against enumerating every path."""
import itertools

import numpy as np
import pytest

from data.decoding.marginals import SpanTerms, span_probabilities, span_terms
from serve.calibration import average_precision, expected_calibration_error, reliability


def brute_force(emissions, transitions, tags, start, end):
    """P(tags[start:end] | sequence) by summing over every tag path."""
    length, count = emissions.shape
    paths = np.array(list(itertools.product(range(count), repeat=length)))
    scores = emissions[np.arange(length), paths].sum(axis=1)
    scores += transitions[paths[:, :-1], paths[:, 1:]].sum(axis=1)
    weights = np.exp(scores - scores.max())
    match = np.all(paths[:, start:end] == np.asarray(tags)[start:end], axis=1)
    return weights[match].sum() / weights.sum()


def flat_terms(terms: SpanTerms, row: int, length: int) -> SpanTerms:
    return SpanTerms(terms.start[row, :length], terms.step[row, :length], terms.end[row, :length])


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("seed", range(4))
def test_every_span_of_every_path_equals_enumeration(seed, dtype, tolerance):
    rng = np.random.default_rng(seed)
    batch, time, count = 4, 5, 3
    emissions = rng.normal(0, 2, (batch, time, count))
    transitions = rng.normal(0, 2, (count, count))
    lengths = np.array([5, 1, 4, 2])  # unsorted, one of length 1
    tags = rng.integers(0, count, (batch, time))
    terms = span_terms(emissions, transitions, lengths, tags, dtype=dtype)
    for row, length in enumerate(lengths):
        for start in range(length):  # spans at the first and the last character included
            for end in range(start + 1, length + 1):
                got = span_probabilities(flat_terms(terms, row, length), np.array([start]),
                                         np.array([end]))[0]
                want = brute_force(emissions[row, :length], transitions, tags[row], start, end)
                assert got == pytest.approx(want, abs=tolerance)


def test_temperature_divides_emissions_and_transitions():
    rng = np.random.default_rng(7)
    emissions, transitions = rng.normal(0, 3, (1, 4, 3)), rng.normal(0, 3, (3, 3))
    tags = rng.integers(0, 3, (1, 4))
    terms = span_terms(emissions, transitions, np.array([4]), tags, temperature=2.5,
                       dtype=np.float64)
    got = span_probabilities(flat_terms(terms, 0, 4), np.array([1]), np.array([3]))[0]
    assert got == pytest.approx(brute_force(emissions[0] / 2.5, transitions / 2.5, tags[0], 1, 3))


def test_a_span_across_two_pieces_is_the_product_of_its_parts():
    rng = np.random.default_rng(3)
    emissions, transitions = rng.normal(0, 2, (2, 3, 3)), rng.normal(0, 2, (3, 3))
    tags = rng.integers(0, 3, (2, 3))
    terms = span_terms(emissions, transitions, np.array([3, 3]), tags, dtype=np.float64)
    flat = SpanTerms(*(getattr(terms, name).reshape(-1) for name in ("start", "step", "end")))
    got = span_probabilities(flat, np.array([1]), np.array([5]))[0]  # piece 1 [1, 3), 2 [0, 2)
    want = brute_force(emissions[0], transitions, tags[0], 1, 3) * \
        brute_force(emissions[1], transitions, tags[1], 0, 2)
    assert got == pytest.approx(want, rel=1e-9)


def test_calibration_measures_on_known_cases():
    scores = np.array([0.95, 0.9, 0.85, 0.15, 0.1])
    correct = np.array([True, True, False, False, True])
    # bins: 0.1 and 0.15 in bin 1 (accuracy 0.5, mean 0.125); 0.85 in bin 8; 0.9 and 0.95 in 9
    want = (abs(0.5 - 0.125) * 2 + abs(0.0 - 0.85) * 1 + abs(1.0 - 0.925) * 2) / 5
    assert expected_calibration_error(scores, correct) == pytest.approx(want)
    assert average_precision(scores, correct) == pytest.approx((1 + 1 + 3 / 5) / 3)
    assert [row["count"] for row in reliability(scores, correct)] == [2, 1, 2]
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0.0


# -- through the deployed tagger ----------------------------------------------------------
FORCED = "北京大学 ORG\n周恩来 PER\n北京 LOC\n"


@pytest.fixture(scope="module")
def forced_tagger(exported, tmp_path_factory):
    from serve.tagger import Tagger
    words = tmp_path_factory.mktemp("lists") / "force.txt"
    words.write_text(FORCED, encoding="utf-8")
    return Tagger.load(exported[0], force_words=words)


@pytest.mark.slow
def test_entity_scores_of_the_tagger_equal_enumeration(forced_tagger):
    tagger = forced_tagger
    texts = ["北京大学", "周恩来", "去北京"]
    for text, entities in zip(texts, tagger.tag(texts)):
        emissions = tagger.emissions([text])[0].astype(np.float64)
        tags = tagger.tag_ids([text])[0]
        assert entities, text
        for entity in entities:
            want = brute_force(emissions, tagger.transitions.astype(np.float64), tags,
                               entity.start, entity.end)
            assert entity.score == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_pieces_of_a_long_text_are_scored_each(forced_tagger):
    tagger = forced_tagger
    piece = "周恩来在北京大学。" + "好" * (tagger.max_len - 9)
    whole = tagger.tag([piece * 3])[0]
    alone = tagger.tag([piece])[0]
    assert len(whole) == 3 * len(alone)
    assert [e.score for e in whole] == [e.score for e in alone] * 3


@pytest.mark.slow
def test_min_score_leaves_out_entities_and_their_tags(forced_tagger):
    from serve.records import TagOptions, tag_records
    texts = ["周恩来在北京大学讲话。"]
    scored = tag_records(forced_tagger, texts, TagOptions())[0]["entities"]
    assert all("score" in entity for entity in scored)
    cut = sorted(entity["score"] for entity in scored)[-1]
    kept = tag_records(forced_tagger, texts, TagOptions(min_score=cut))[0]["entities"]
    assert kept == [entity for entity in scored if entity["score"] >= cut]
    bmeo = tag_records(forced_tagger, texts, TagOptions("bmeo", min_score=1.0))[0]
    assert set(bmeo.split()) <= {"O"} | {f"{p}-{t}" for e in kept for p in "BMES"
                                         for t in [e["type"]]}
    plain = tag_records(forced_tagger, texts, TagOptions(scores=False))[0]["entities"]
    assert plain == [{k: v for k, v in e.items() if k != "score"} for e in scored]


@pytest.mark.slow
def test_a_stored_temperature_changes_scores_not_tags(exported, tmp_path):
    import shutil

    from export.calibrate import store_temperature
    from serve.tagger import Tagger
    copy = tmp_path / "tempered.onnx"
    shutil.copy(exported[0], copy)
    store_temperature(copy, 2.0)
    force = tmp_path / "force.txt"
    force.write_text(FORCED, encoding="utf-8")
    plain, tempered = (Tagger.load(path, force_words=force) for path in (exported[0], copy))
    assert (plain.temperature, tempered.temperature) == (1.0, 2.0)
    texts = ["周恩来在北京大学。", "去北京"]
    assert tempered.tag_bmeo(texts) == plain.tag_bmeo(texts)
    for text, entities in zip(texts, tempered.tag(texts)):
        emissions = tempered.emissions([text])[0].astype(np.float64) / 2.0
        tags = tempered.tag_ids([text])[0]
        for entity in entities:
            want = brute_force(emissions, tempered.transitions.astype(np.float64) / 2.0, tags,
                               entity.start, entity.end) if len(text) <= 6 else None
            if want is not None:
                assert entity.score == pytest.approx(want, abs=1e-4)
    assert [e.score for e in tempered.tag(texts)[0]] != [e.score for e in plain.tag(texts)[0]]


def test_log_loss_prefers_scores_that_match_the_outcomes():
    from export.calibrate import log_loss
    correct = np.array([True, True, False, True])
    assert log_loss(np.array([0.9, 0.8, 0.2, 0.7]), correct) < \
        log_loss(np.array([0.99, 0.99, 0.99, 0.99]), correct)
