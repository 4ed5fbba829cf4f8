"""Keras-side prediction: emissions from the model, Viterbi in numpy, tags and scores."""
from __future__ import annotations

import numpy as np

from data.metrics import entity_scores
from training.tf_input import EncodedCorpus, inference_batches
from data.decoding.viterbi import viterbi_decode
from data.encoding.vocab import TagVocab
from models.tagger import emissions_function


def predict_tag_ids(model, corpus: EncodedCorpus, batch_size: int = 256,
                    use_predict: bool = False) -> list[np.ndarray]:
    """Best tag ids per sentence, in corpus order.

    use_predict=True goes through `model.predict` (the slow path users start from);
    otherwise one compiled tf.function serves every batch.
    """
    compute = None if use_predict else emissions_function(model)
    transitions = model.crf.transitions.numpy()
    predicted: list[np.ndarray] = [None] * len(corpus)
    for indices, inputs in inference_batches(corpus, batch_size):
        if use_predict:
            emissions = model.predict(inputs, verbose=0)
        else:
            emissions = compute(inputs).numpy()
        lengths = np.array([len(corpus.char_ids[i]) for i in indices])
        tag_ids, _ = viterbi_decode(emissions, transitions, lengths)
        for row, index in enumerate(indices):
            predicted[index] = tag_ids[row, :lengths[row]]
    return predicted


def score_corpus(model, corpus: EncodedCorpus, tags: TagVocab, batch_size: int = 256) -> dict:
    predicted = predict_tag_ids(model, corpus, batch_size)
    return entity_scores([tags.decode(ids) for ids in corpus.tag_ids],
                         [tags.decode(ids) for ids in predicted])
