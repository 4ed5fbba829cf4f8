"""The CRF against brute-force enumeration of every tag path."""
import itertools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from data.decoding.viterbi import viterbi_decode  # noqa: E402
from models.crf import crf_log_likelihood, crf_log_norm  # noqa: E402


def path_score(emissions, transitions, path):
    score = sum(emissions[t, tag] for t, tag in enumerate(path))
    return score + sum(transitions[a, b] for a, b in zip(path[:-1], path[1:]))


def brute_force(emissions, transitions, length):
    """log Z and the best path of one sequence, by enumerating all num_tags**length paths."""
    num_tags = emissions.shape[1]
    scores = {path: path_score(emissions, transitions, path)
              for path in itertools.product(range(num_tags), repeat=length)}
    log_norm = np.logaddexp.reduce(np.array(list(scores.values())))
    best = max(scores, key=scores.get)
    return log_norm, list(best), scores[best], scores


def brute_force_marginals(emissions, transitions, length):
    """[length, tags] marginals of one sequence, summed over every tag path."""
    num_tags = emissions.shape[1]
    log_norm, _, _, scores = brute_force(emissions, transitions, length)
    marginals = np.zeros((length, num_tags))
    for path, score in scores.items():
        for t, tag in enumerate(path):
            marginals[t, tag] += np.exp(score - log_norm)
    return marginals


def ragged_case(rng, num_tags, max_len, batch=4):
    lengths = rng.integers(1, max_len + 1, size=batch)
    lengths[0] = max_len  # the batch is padded to its longest sequence
    emissions = rng.normal(size=(batch, max_len, num_tags)) * 2
    transitions = rng.normal(size=(num_tags, num_tags)) * 2
    tag_ids = rng.integers(0, num_tags, size=(batch, max_len))
    return emissions, transitions, tag_ids, lengths


CASES = [(num_tags, max_len, seed) for num_tags in (2, 3, 4, 5) for max_len in (1, 2, 3, 4, 5, 6)
         for seed in (0,) if num_tags ** max_len <= 16000]


@pytest.mark.parametrize("num_tags,max_len,seed", CASES)
def test_log_likelihood_equals_brute_force(num_tags, max_len, seed):
    rng = np.random.default_rng(seed * 100 + num_tags * 10 + max_len)
    emissions, transitions, tag_ids, lengths = ragged_case(rng, num_tags, max_len)
    log_likelihood = crf_log_likelihood(tf.constant(emissions), tf.constant(tag_ids),
                                        tf.constant(lengths), tf.constant(transitions)).numpy()
    for b, length in enumerate(lengths):
        log_norm, _, _, scores = brute_force(emissions[b], transitions, length)
        expected = scores[tuple(tag_ids[b, :length])] - log_norm
        assert abs(log_likelihood[b] - expected) < 1e-5, (b, length)


@pytest.mark.parametrize("num_tags,max_len,seed", CASES)
# 1: the single-sequence path; 3: backtracking in lists; 9: in numpy; 20: the
# batch-innermost layout for wide batches
@pytest.mark.parametrize("batch", [1, 3, 9, 20])
def test_viterbi_equals_brute_force(num_tags, max_len, seed, batch):
    rng = np.random.default_rng(seed * 100 + num_tags * 10 + max_len + 1)
    emissions, transitions, _, lengths = ragged_case(rng, num_tags, max_len, batch)
    tag_ids, best_scores = viterbi_decode(emissions, transitions, lengths)
    for b, length in enumerate(lengths):
        _, best_path, best_score, _ = brute_force(emissions[b], transitions, length)
        assert tag_ids[b, :length].tolist() == best_path
        assert (tag_ids[b, length:] == 0).all()
        assert abs(best_scores[b] - best_score) < 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_both_viterbi_layouts_break_ties_alike(seed):
    """Small integer scores make many equal-scoring paths: the wide-batch layout recomputes
    its argmax while backtracking and must pick the same path as the backpointer one."""
    from data.decoding.viterbi import _viterbi_batch_innermost, _viterbi_tags_innermost

    rng = np.random.default_rng(seed)
    emissions = rng.integers(-2, 3, size=(40, 12, 5)).astype(np.float32)
    transitions = rng.integers(-1, 2, size=(5, 5)).astype(np.float32)
    lengths = rng.integers(0, 13, size=40)
    lengths[0] = 12
    wide = _viterbi_batch_innermost(emissions, transitions, lengths)
    narrow = _viterbi_tags_innermost(emissions, transitions, lengths)
    np.testing.assert_array_equal(wide[0], narrow[0])
    np.testing.assert_array_equal(wide[1], narrow[1])


@pytest.mark.parametrize("seed", range(5))
def test_single_sequence_path_breaks_ties_like_the_batch(seed):
    """A text must get the same tags alone (viterbi_path) as inside a batch."""
    from data.decoding.viterbi import _viterbi_tags_innermost

    rng = np.random.default_rng(seed)
    emissions = rng.integers(-2, 3, size=(40, 12, 5)).astype(np.float32)
    transitions = rng.integers(-1, 2, size=(5, 5)).astype(np.float32)
    lengths = rng.integers(1, 13, size=40)
    lengths[0] = 12
    batch_tags, batch_scores = _viterbi_tags_innermost(emissions, transitions, lengths)
    for row, length in enumerate(lengths):
        alone_tags, alone_scores = viterbi_decode(emissions[row:row + 1, :length], transitions,
                                                  lengths[row:row + 1])
        assert alone_tags[0].tolist() == batch_tags[row, :length].tolist()
        assert alone_scores[0] == batch_scores[row]


def test_float32_log_norm_matches_float64():
    rng = np.random.default_rng(7)
    emissions, transitions, _, lengths = ragged_case(rng, 5, 6)
    exact = crf_log_norm(tf.constant(emissions), tf.constant(lengths), tf.constant(transitions))
    single = crf_log_norm(tf.constant(emissions, tf.float32), tf.constant(lengths),
                          tf.constant(transitions, tf.float32))
    np.testing.assert_allclose(single.numpy(), exact.numpy(), atol=1e-4)


def test_zero_length_sequence_has_zero_log_likelihood():
    emissions = tf.constant(np.ones((2, 3, 2)))
    log_likelihood = crf_log_likelihood(emissions, tf.zeros((2, 3), tf.int32),
                                        tf.constant([0, 3]), tf.constant(np.zeros((2, 2))))
    assert log_likelihood.numpy()[0] == 0.0
    assert abs(log_likelihood.numpy()[1] - np.log(1 / 8)) < 1e-9


def test_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    emissions, transitions, tag_ids, lengths = ragged_case(rng, 3, 4)
    emissions_var = tf.Variable(emissions)
    transitions_var = tf.Variable(transitions)

    def loss(e, t):
        return -tf.reduce_mean(crf_log_likelihood(e, tf.constant(tag_ids), tf.constant(lengths), t))

    with tf.GradientTape() as tape:
        value = loss(emissions_var, transitions_var)
    grad_emissions, grad_transitions = tape.gradient(value, [emissions_var, transitions_var])
    step = 1e-6
    for array, grad in ((emissions, grad_emissions.numpy()), (transitions, grad_transitions.numpy())):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            plus, minus = array.copy(), array.copy()
            plus[index] += step
            minus[index] -= step
            args = ((plus, transitions), (minus, transitions)) if array is emissions else (
                (emissions, plus), (emissions, minus))
            numeric[index] = (loss(*map(tf.constant, args[0])) -
                              loss(*map(tf.constant, args[1]))).numpy() / (2 * step)
        np.testing.assert_allclose(grad, numeric, atol=1e-6)
    # Padding positions get no gradient: the loss must not see them.
    for b, length in enumerate(lengths):
        assert np.all(grad_emissions.numpy()[b, length:] == 0)


@pytest.mark.parametrize("num_tags,max_len,seed", CASES)
def test_marginals_equal_brute_force(num_tags, max_len, seed):
    from data.decoding.marginals import crf_marginals

    rng = np.random.default_rng(seed * 100 + num_tags * 10 + max_len + 2)
    emissions, transitions, _, lengths = ragged_case(rng, num_tags, max_len, batch=5)
    lengths[-1] = 0  # an empty sequence has no marginals
    marginals = crf_marginals(emissions, transitions, lengths)
    for b, length in enumerate(lengths):
        expected = np.zeros((max_len, num_tags))
        if length:
            expected[:length] = brute_force_marginals(emissions[b], transitions, length)
        np.testing.assert_allclose(marginals[b], expected, atol=1e-6)
        if length:
            np.testing.assert_allclose(marginals[b, :length].sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("num_tags,max_len", [(3, 1), (4, 5), (5, 6)])
def test_tf_log_marginals_equal_the_numpy_marginals(num_tags, max_len):
    from data.decoding.marginals import crf_marginals
    from models.crf import crf_log_marginals

    rng = np.random.default_rng(num_tags * 10 + max_len)
    emissions, transitions, _, lengths = ragged_case(rng, num_tags, max_len, batch=6)
    log_marginals = crf_log_marginals(tf.constant(emissions), tf.constant(lengths),
                                      tf.constant(transitions)).numpy()
    expected = crf_marginals(emissions, transitions, lengths)
    valid = np.arange(max_len)[None, :] < lengths[:, None]
    np.testing.assert_allclose(np.exp(log_marginals)[valid], expected[valid], atol=1e-5)
    assert np.all(log_marginals[~valid] == 0)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_student_soft_loss_is_the_cross_entropy_at_the_temperature(temperature):
    """crf_loss with soft targets only: T**2 times the cross-entropy of the targets against
    the student's CRF marginals of emissions / T and transitions / T, enumerated by hand."""
    from models.tagger import BiLSTMCRF

    num_tags, lengths = 3, np.array([4, 2])
    model = BiLSTMCRF(num_chars=9, num_tags=num_tags, embedding_dim=4, hidden_size=3)
    char_ids = np.array([[2, 3, 4, 5], [6, 7, 0, 0]], np.int32)
    inputs = {"char_ids": tf.constant(char_ids)}
    emissions = model(inputs).numpy()
    model.crf.transitions.assign(np.random.default_rng(1).normal(size=(3, 3)) * 2)
    rng = np.random.default_rng(2)
    soft = rng.dirichlet(np.ones(num_tags), size=(2, 4)).astype(np.float32)
    soft[1, 2:] = 0.0  # padding carries no target
    model.soft_weight, model.temperature = 1.0, temperature
    loss = model.crf_loss(inputs, (tf.zeros((2, 4), tf.int32), tf.constant(soft)), False)
    transitions = model.crf.transitions.numpy()
    cross_entropies = [
        -np.sum(soft[b, :length] * np.log(brute_force_marginals(
            emissions[b, :length] / temperature, transitions / temperature, length)))
        for b, length in enumerate(lengths)]
    assert float(loss) == pytest.approx(temperature ** 2 * np.mean(cross_entropies), rel=1e-4)


def test_teacher_targets_soften_with_the_temperature_and_keep_their_tags():
    """The teacher's marginals at T are those of its scores divided by T; the Viterbi tags it
    gives raw text do not change with T."""
    from types import SimpleNamespace

    from training.distillation import teacher_outputs
    from models.tagger import BiLSTMCRF

    model = BiLSTMCRF(num_chars=40, num_tags=4, embedding_dim=4, hidden_size=3)
    texts = ["甲乙丙", "丁", "戊己庚辛"]

    def encode_padded(batch):
        width = max(map(len, batch))
        return {"char_ids": tf.constant([[2 + ord(c) % 30 for c in t] + [0] * (width - len(t))
                                         for t in batch], tf.int32)}

    teacher = SimpleNamespace(model=model, encoder=SimpleNamespace(encode_padded=encode_padded))
    model(encode_padded(texts))
    model.crf.transitions.assign(np.random.default_rng(3).normal(size=(4, 4)) * 3)
    cold, cold_tags = teacher_outputs([teacher], texts, temperature=1.0)
    warm, warm_tags = teacher_outputs([teacher], texts, temperature=3.0)
    emissions = model(encode_padded(texts)).numpy()
    transitions = model.crf.transitions.numpy()
    for index, text in enumerate(texts):
        expected = brute_force_marginals(emissions[index, :len(text)] / 3.0, transitions / 3.0,
                                         len(text))
        np.testing.assert_allclose(warm[index], expected, atol=1e-5)
        np.testing.assert_array_equal(cold_tags[index], warm_tags[index])
    assert np.mean([m.max(axis=1).mean() for m in warm]) < \
        np.mean([m.max(axis=1).mean() for m in cold])  # softer


def tiny_tagger_and_batch(seed: int = 4):
    """A small tagger without dropout (so training=True is deterministic), two sentences
    (one padded) and their tags."""
    from models.tagger import BiLSTMCRF

    model = BiLSTMCRF(num_chars=12, num_tags=3, embedding_dim=5, hidden_size=4, dropout=0.0,
                      embedding_dropout=0.0)
    inputs = {"char_ids": tf.constant([[2, 3, 4, 5, 6], [7, 8, 9, 0, 0]], tf.int32)}
    tag_ids = tf.constant([[0, 1, 2, 0, 1], [2, 2, 0, 0, 0]], tf.int32)
    model(inputs)
    model.crf.transitions.assign(np.random.default_rng(seed).normal(size=(3, 3)))
    return model, inputs, tag_ids


def test_adversarial_step_has_the_set_size_per_character_along_the_gradient():
    model, inputs, _ = tiny_tagger_and_batch()
    model.adversarial = 0.7
    gradient = np.random.default_rng(5).normal(size=(2, 5, 5)).astype(np.float32)
    gradient[1, 3:] = 0.0  # padding has no gradient
    step = model.adversarial_step(tf.constant(gradient), inputs["char_ids"]).numpy()
    for sentence, length in enumerate([5, 3]):
        size_per_char = np.sqrt(np.sum(step[sentence] ** 2) / length)
        assert size_per_char == pytest.approx(0.7, rel=1e-5)
        ratios = step[sentence, :length] / gradient[sentence, :length]
        np.testing.assert_allclose(ratios, ratios.flat[0], rtol=1e-5)
        assert ratios.flat[0] > 0  # along the gradient, not against it
    np.testing.assert_array_equal(step[1, 3:], 0.0)


def test_adversarial_loss_averages_the_loss_before_and_after_a_step_that_raises_it():
    """With --adversarial, the training loss is the mean of the loss on the input vectors and
    on the vectors moved by the step; that step raises the loss more than random steps of
    the same size; outside training the loss is the plain one."""
    model, inputs, tag_ids = tiny_tagger_and_batch()
    model.adversarial = 0.5
    vectors = model.input_vectors(inputs)
    with tf.GradientTape() as tape:
        tape.watch(vectors)
        clean = model.loss_of_vectors(vectors, inputs, tag_ids, True)
    step = model.adversarial_step(tape.gradient(clean, vectors), inputs["char_ids"])
    moved = float(model.loss_of_vectors(vectors + step, inputs, tag_ids, True))
    assert float(model.crf_loss(inputs, tag_ids, True)) == pytest.approx(
        0.5 * (float(clean) + moved), rel=1e-5)
    assert float(model.crf_loss(inputs, tag_ids, False)) == pytest.approx(float(clean), rel=1e-6)
    assert moved > float(clean)
    rng = np.random.default_rng(6)
    for _ in range(20):
        direction = rng.normal(size=vectors.shape).astype(np.float32)
        direction[1, 3:] = 0.0
        random_step = model.adversarial_step(tf.constant(direction), inputs["char_ids"])
        assert float(model.loss_of_vectors(vectors + random_step, inputs, tag_ids, True)) < moved


def test_adversarial_steps_move_the_trained_embeddings_and_leave_the_lexicon_inputs():
    """learned_columns marks exactly the embedding columns of input_vectors (characters,
    bigrams, word sets) and the step is zero on the lexicon flags and char priors."""
    from data.lexicon.features import CHAR_PRIOR_IDS, FLAGS, WORD_IDS, WORD_WEIGHTS
    from models.tagger import BiLSTMCRF

    model = BiLSTMCRF(num_chars=12, num_tags=3, embedding_dim=5, hidden_size=4, num_bigrams=10,
                      bigram_dim=3, num_lexicon_flags=4, num_words=6, word_dim=2, word_top_k=1,
                      num_char_priors=12, char_prior_dim=2)
    rng = np.random.default_rng(7)
    char_ids = tf.constant([[2, 3, 4], [5, 6, 0]], tf.int32)
    inputs = {"char_ids": char_ids, "bigram_ids": tf.constant([[2, 3, 4], [5, 6, 0]], tf.int32),
              FLAGS: tf.constant(rng.integers(0, 2, size=(2, 3, 4)), tf.uint8),
              WORD_IDS: tf.constant(rng.integers(0, 6, size=(2, 3, 4)), tf.int32),
              WORD_WEIGHTS: tf.constant(rng.random(size=(2, 3, 4)), tf.float32),
              CHAR_PRIOR_IDS: char_ids}
    model(inputs)
    vectors = model.input_vectors(inputs).numpy()
    learned = np.array(model.learned_columns())
    assert learned.shape == (vectors.shape[-1],)
    lexicon_inputs = np.concatenate([inputs[FLAGS].numpy().astype(np.float32),
                                     model.char_prior_embedding(char_ids).numpy()], axis=-1)
    np.testing.assert_array_equal(vectors[..., ~learned], lexicon_inputs)
    np.testing.assert_array_equal(
        vectors[..., learned],
        np.concatenate([model.char_embedding(char_ids).numpy(),
                        model.bigram_embedding(inputs["bigram_ids"]).numpy(),
                        model.word_set_vectors(inputs[WORD_IDS], inputs[WORD_WEIGHTS]).numpy()],
                       axis=-1))
    model.adversarial = 1.0
    step = model.adversarial_step(tf.ones_like(vectors), char_ids).numpy()
    assert np.all(step[..., ~learned] == 0) and np.all(step[0][..., learned] > 0)
