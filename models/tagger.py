"""The Bi-LSTM-CRF tagger as a Keras 3 model.

char_ids (+ bigram_ids) -> Embedding(s), concatenated with the lexicon inputs (B/M/E/S flags
as 0/1 values; per-set weighted averages of word embeddings) -> dropout -> `layers` x Bi-LSTM
-> dropout -> Dense(num_tags) = emissions; a CRF layer holds the transitions. Training
minimises the CRF negative log-likelihood; `call` returns emissions, decoding is Viterbi.

`masked=False` builds the same network without Keras masking: the form exported to ONNX,
where masking becomes `Loop` ops but an unmasked LSTM becomes one native `LSTM` node whose
`sequence_lens` input then restores the masked meaning exactly.
"""
from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from data.encoding.inputs import BIGRAM_IDS, CHAR_IDS
from data.lexicon.features import CHAR_PRIOR_IDS, FLAGS, SETS, WORD_IDS, WORD_WEIGHTS
from data.encoding.vocab import PAD_ID
from models.crf import CRF, crf_log_likelihood, crf_log_marginals


def sequence_lengths_of(char_ids):
    return tf.reduce_sum(tf.cast(tf.not_equal(char_ids, PAD_ID), tf.int32), axis=1)


@keras.saving.register_keras_serializable(package="ner")
class BiLSTMCRF(keras.Model):
    def __init__(self, num_chars: int, num_tags: int, embedding_dim: int = 128,
                 hidden_size: int = 128, layers: int = 1, dropout: float = 0.3,
                 embedding_dropout: float = 0.5, num_bigrams: int = 0, bigram_dim: int = 0,
                 num_lexicon_flags: int = 0, num_words: int = 0, word_dim: int = 0,
                 word_top_k: int = 0, num_char_priors: int = 0, char_prior_dim: int = 0,
                 masked: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.settings = dict(num_chars=num_chars, num_tags=num_tags, embedding_dim=embedding_dim,
                             hidden_size=hidden_size, layers=layers, dropout=dropout,
                             embedding_dropout=embedding_dropout, num_bigrams=num_bigrams,
                             bigram_dim=bigram_dim, num_lexicon_flags=num_lexicon_flags,
                             num_words=num_words, word_dim=word_dim, word_top_k=word_top_k,
                             num_char_priors=num_char_priors, char_prior_dim=char_prior_dim,
                             masked=masked)
        self.uses_bigrams = num_bigrams > 0 and bigram_dim > 0
        self.uses_words = num_words > 0 and word_dim > 0 and word_top_k > 0
        self.word_embedding = (keras.layers.Embedding(num_words, word_dim, name="word_embedding")
                               if self.uses_words else None)
        self.uses_char_priors = num_char_priors > 0 and char_prior_dim > 0
        # the lexicon's per-character statistics (data/lexicon/features.py char_prior_table),
        # set by the trainer and never trained
        self.char_prior_embedding = (keras.layers.Embedding(
            num_char_priors, char_prior_dim, trainable=False, name="char_prior_embedding")
            if self.uses_char_priors else None)
        self.char_embedding = keras.layers.Embedding(num_chars, embedding_dim, mask_zero=masked,
                                                     name="char_embedding")
        self.bigram_embedding = (keras.layers.Embedding(num_bigrams, bigram_dim,
                                                        name="bigram_embedding")
                                 if self.uses_bigrams else None)
        self.embedding_dropout = keras.layers.Dropout(embedding_dropout, name="embedding_dropout")
        self.recurrent = [
            keras.layers.Bidirectional(
                keras.layers.LSTM(hidden_size, return_sequences=True), name=f"bilstm_{i}")
            for i in range(layers)]
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        self.emission_dense = keras.layers.Dense(num_tags, name="emissions")
        self.crf = CRF(num_tags, name="crf")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]  # reset by Keras at each epoch start

    def call(self, inputs, training=False):
        return self.emissions_from(self.input_vectors(inputs), inputs["char_ids"], training)

    def input_vectors(self, inputs):
        """[batch, time, inputs per char]: the embeddings and lexicon inputs, concatenated
        (in the order of `learned_columns`)."""
        char_ids = inputs["char_ids"]
        features = self.char_embedding(char_ids)
        parts = [features]
        if self.uses_bigrams:
            parts.append(self.bigram_embedding(inputs[BIGRAM_IDS]))
        if self.settings["num_lexicon_flags"]:
            parts.append(tf.cast(inputs[FLAGS], features.dtype))
        if self.uses_words:
            parts.append(self.word_set_vectors(inputs[WORD_IDS], inputs[WORD_WEIGHTS]))
        if self.uses_char_priors:
            parts.append(self.char_prior_embedding(inputs[CHAR_PRIOR_IDS]))
        return keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else features

    def learned_columns(self) -> list[bool]:
        """Per column of `input_vectors`: True for trained embeddings (characters, bigrams,
        words), False for the lexicon's flags and frozen char priors, which are facts about
        the text that adversarial steps leave alone."""
        settings = self.settings
        columns = [True] * settings["embedding_dim"]
        if self.uses_bigrams:
            columns += [True] * settings["bigram_dim"]
        columns += [False] * settings["num_lexicon_flags"]
        if self.uses_words:
            columns += [True] * len(SETS) * settings["word_dim"]
        if self.uses_char_priors:
            columns += [False] * settings["char_prior_dim"]
        return columns

    def emissions_from(self, features, char_ids, training=False):
        mask = keras.ops.not_equal(char_ids, PAD_ID) if self.settings["masked"] else None
        features = self.embedding_dropout(features, training=training)
        for layer in self.recurrent:
            features = layer(features, mask=mask, training=training)
        features = self.output_dropout(features, training=training)
        return self.crf(self.emission_dense(features))

    def word_set_vectors(self, word_ids, word_weights):
        """[batch, time, 4 * word_dim]: per B/M/E/S set, the weighted sum of its words'
        embeddings (SoftLexicon's set vectors; weights come normalised from the encoder)."""
        weighted = self.word_embedding(word_ids) * word_weights[..., None]
        top_k, word_dim = self.settings["word_top_k"], self.settings["word_dim"]
        leading = tf.shape(word_ids)[:2]
        per_set = tf.reshape(weighted, tf.concat([leading, [len(SETS), top_k, word_dim]], 0))
        return tf.reshape(tf.reduce_sum(per_set, axis=3),
                          tf.concat([leading, [len(SETS) * word_dim]], 0))

    def input_specs(self) -> dict[str, tf.TensorSpec]:
        """Name -> TensorSpec of every input, batch and time dynamic."""
        specs = {CHAR_IDS: tf.TensorSpec([None, None], tf.int32, name=CHAR_IDS)}
        if self.uses_bigrams:
            specs[BIGRAM_IDS] = tf.TensorSpec([None, None], tf.int32, name=BIGRAM_IDS)
        if self.settings["num_lexicon_flags"]:
            specs[FLAGS] = tf.TensorSpec([None, None, self.settings["num_lexicon_flags"]],
                                         tf.uint8, name=FLAGS)
        if self.uses_words:
            slots = len(SETS) * self.settings["word_top_k"]
            specs[WORD_IDS] = tf.TensorSpec([None, None, slots], tf.int32, name=WORD_IDS)
            specs[WORD_WEIGHTS] = tf.TensorSpec([None, None, slots], tf.float32,
                                                name=WORD_WEIGHTS)
        if self.uses_char_priors:
            specs[CHAR_PRIOR_IDS] = tf.TensorSpec([None, None], tf.int32, name=CHAR_PRIOR_IDS)
        return specs

    # Distillation (training/distillation.py): the share of the loss given to the teacher's
    # marginals; set on the student before training, not saved with the model.
    soft_weight = 0.0
    temperature = 1.0
    # Adversarial training (--adversarial EPS): set by the trainer, not saved with the model.
    adversarial = 0.0

    def crf_loss(self, inputs, targets, training):
        """CRF negative log-likelihood of the tags (mixed with the distillation term below);
        with `adversarial` > 0 while training, the mean of that loss on the inputs and on the
        inputs moved by `adversarial_step` (Miyato et al.'s adversarial training, FGM)."""
        vectors = self.input_vectors(inputs)
        if not (training and self.adversarial):
            return self.loss_of_vectors(vectors, inputs, targets, training)
        with tf.GradientTape() as tape:
            tape.watch(vectors)
            loss = self.loss_of_vectors(vectors, inputs, targets, training)
        step = self.adversarial_step(tape.gradient(loss, vectors), inputs["char_ids"])
        adversarial_loss = self.loss_of_vectors(vectors + step, inputs, targets, training)
        return 0.5 * (loss + adversarial_loss)

    def adversarial_step(self, gradient, char_ids):
        """The change of the trained embeddings that raises the loss fastest, per sentence:
        along the gradient, scaled so its root-mean-square size per character is
        `adversarial` (a fixed per-character strength, whatever the sentence's length); the
        lexicon's inputs are not moved. A constant of the step."""
        gradient = tf.stop_gradient(gradient) * tf.constant(self.learned_columns(),
                                                            gradient.dtype)
        lengths = tf.cast(sequence_lengths_of(char_ids), gradient.dtype)
        norms = tf.sqrt(tf.reduce_sum(tf.square(gradient), axis=[1, 2]))
        scale = self.adversarial * tf.sqrt(lengths) / tf.maximum(norms, 1e-12)
        return gradient * scale[:, None, None]

    def loss_of_vectors(self, vectors, inputs, targets, training):
        """The loss from the input vectors: CRF negative log-likelihood of the tags; with (tags,
        teacher marginals) targets, mixed with the cross-entropy of the student's CRF marginals
        against the teacher's, both at `temperature` (the teacher's are computed at it in
        training/distillation.py)."""
        tag_ids, soft = targets if isinstance(targets, (tuple, list)) else (targets, None)
        emissions = self.emissions_from(vectors, inputs["char_ids"], training)
        lengths = sequence_lengths_of(inputs["char_ids"])
        log_likelihood = crf_log_likelihood(emissions, tag_ids, lengths, self.crf.transitions)
        loss = -tf.reduce_mean(log_likelihood)
        if soft is None or not self.soft_weight:
            return loss
        temperature = self.temperature
        log_marginals = crf_log_marginals(emissions / temperature, lengths,
                                          self.crf.transitions / temperature)
        soft_loss = -tf.reduce_mean(tf.reduce_sum(tf.cast(soft, emissions.dtype) * log_marginals,
                                                  axis=[1, 2])) * temperature ** 2
        return (1.0 - self.soft_weight) * loss + self.soft_weight * soft_loss

    def train_step(self, data):
        inputs, tag_ids = data
        with tf.GradientTape() as tape:
            loss = self.crf_loss(inputs, tag_ids, training=True)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        inputs, tag_ids = data
        self.loss_tracker.update_state(self.crf_loss(inputs, tag_ids, training=False))
        return {"loss": self.loss_tracker.result()}

    def get_config(self):
        return {**super().get_config(), **self.settings}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def input_example(self, batch: int = 1, time: int = 2) -> dict:
        return {name: tf.ones([batch, time] + spec.shape[2:].as_list(), spec.dtype)
                for name, spec in self.input_specs().items()}

    def unmasked_copy(self) -> "BiLSTMCRF":
        """The same weights in a network without Keras masking (for export)."""
        copy = BiLSTMCRF(**{**self.settings, "masked": False})
        copy(copy.input_example())
        copy.set_weights(self.get_weights())
        return copy


_compiled = weakref.WeakKeyDictionary()


def emissions_function(model: BiLSTMCRF):
    """A compiled inference function: inputs dict -> emissions, shapes left dynamic (cached)."""
    if model in _compiled:
        return _compiled[model]
    signature = model.input_specs()

    @tf.function(input_signature=[signature], reduce_retracing=True)
    def emissions(inputs):
        return model(inputs, training=False)

    _compiled[model] = emissions
    return emissions
