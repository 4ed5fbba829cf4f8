"""Teacher-student training: soft targets from one or more trained runs, and raw text.

A teacher is an ordinary run folder. For every training sentence (and every line of the
`--unlabeled` raw-text files) the teachers' per-character tag marginals (CRF forward-backward
over their emissions, data/decoding/marginals.py) are averaged into the student's soft targets; raw
text also gets hard tags, the Viterbi path over the teachers' averaged emissions and
transitions. The student minimises (1 - soft_weight) * CRF NLL of the (gold or teacher) tags
+ soft_weight * cross-entropy of its own CRF marginals against the teachers'
(models/tagger.py crf_loss). Each teacher reads the text through its own encoder, so a
teacher and its student may differ in size, vocabulary and lexicon features.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.corpus.formats import DataError, Sentence
from data.files import FILE_UTF8_HINT, text_lines
from data.decoding.marginals import crf_marginals
from data.encoding.pieces import piece_bounds
from data.decoding.viterbi import viterbi_decode

TEACHER_BATCH = 256


def read_unlabeled(paths: list[str], max_len: int) -> list[str]:
    """Lines of plain-text files, one text a line, streamed; a line longer than max_len is cut
    into pieces as serving cuts it; empty lines are skipped. Invalid UTF-8 or a file with no
    text at all is a DataError naming FILE:LINE."""
    texts = []
    for path in paths:
        found = False
        with open(path, "rb") as stream:
            for text in text_lines(path, stream, hint=FILE_UTF8_HINT):
                if text.strip():
                    found = True
                    texts += [text[start:end] for start, end in piece_bounds(text, max_len)]
        if not found:
            raise DataError(path, 1, "empty file: no text to learn from")
    return texts


def load_teachers(paths: list[str]) -> list:
    from training.run_files import check_one_tag_set, load_run

    teachers = [load_run(path) for path in paths]
    check_one_tag_set(teachers, "teachers")
    return teachers


def teacher_outputs(teachers: list, texts: list[str], with_tags: bool = True,
                    temperature: float = 1.0
                    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """(averaged marginals [length, tags] of the CRF scores divided by temperature, Viterbi tag
    ids over the averaged emissions and transitions, or None without with_tags: labelled text
    keeps its own tags) per text. Dividing every score by one T leaves the Viterbi path as it
    is, so the hard tags do not depend on the temperature."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    order = np.argsort(lengths, kind="stable")
    marginals = [None] * len(texts)
    tag_ids = [None] * len(texts)
    transitions = np.mean([t.model.crf.transitions.numpy() for t in teachers], axis=0)
    for begin in range(0, len(order), TEACHER_BATCH):
        indices = order[begin:begin + TEACHER_BATCH]
        batch_texts = [texts[i] for i in indices]
        batch_lengths = lengths[indices]
        summed_marginals, summed_emissions = 0.0, 0.0
        for teacher in teachers:
            emissions, teacher_marginals = teacher_scores(
                teacher, teacher.encoder.encode_padded(batch_texts), batch_lengths, temperature)
            summed_marginals = summed_marginals + teacher_marginals
            summed_emissions = summed_emissions + emissions
        averaged = (summed_marginals / len(teachers)).astype(np.float32)
        for row, index in enumerate(indices):
            marginals[index] = averaged[row, :batch_lengths[row]]
        if with_tags:
            best, _ = viterbi_decode(summed_emissions / len(teachers), transitions,
                                     batch_lengths)
            for row, index in enumerate(indices):
                tag_ids[index] = best[row, :batch_lengths[row]].astype(np.int32)
    return marginals, tag_ids if with_tags else None


def teacher_scores(teacher, inputs: dict, lengths: np.ndarray, temperature: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One teacher on a padded batch of its own encoded inputs: (emissions [batch, width,
    tags], CRF marginals of emissions and transitions divided by temperature)."""
    from models.tagger import emissions_function

    emissions = emissions_function(teacher.model)(inputs).numpy()
    transitions = teacher.model.crf.transitions.numpy()
    return emissions, crf_marginals(emissions / temperature, transitions / temperature, lengths)


def attach_teacher_targets(corpus, teachers: list, log=print, temperature: float = 1.0) -> None:
    """Soft targets for every sentence of an encoded training corpus (in place), cross-fitted:
    a sentence's targets average the teachers that were not trained on it, when there are
    such teachers (K teachers trained on K different parts of the data: each part's targets
    come from teachers that never saw it, not from memorised ones); otherwise all teachers."""
    texts = corpus.texts
    each = [teacher_outputs([teacher], texts, with_tags=False, temperature=temperature)[0]
            for teacher in teachers]
    chosen = teachers_for(texts, teachers)
    corpus.soft_targets = [np.mean([each[k][index] for k in ks], axis=0).astype(np.float32)
                           for index, ks in enumerate(chosen)]
    cross_fitted = sum(0 < len(ks) < len(teachers) for ks in chosen)
    log(f"teacher marginals for {len(texts)} training sentences from {len(teachers)} "
        f"teacher(s)" + (f"; {cross_fitted} of them from only the teachers not trained on "
                         "them" if cross_fitted else ""))


def teachers_for(texts: list[str], teachers: list) -> list[tuple[int, ...]]:
    """Per text, the indices of the teachers whose marginals make its targets: those not
    trained on it, or all when every teacher (or none) was."""
    seen = [training_texts(teacher) for teacher in teachers]
    everyone = tuple(range(len(teachers)))
    return [tuple(k for k in everyone if text not in seen[k]) or everyone for text in texts]


def student_view_targets(teachers: list, texts: list[str], temperature: float = 1.0):
    """(indices, drops) -> [batch, width, tags] averaged marginals of the teachers on
    texts[indices] as the student reads them that epoch: each teacher encodes the text its own
    way, and the positions the student's <unk> hit (drops: input name -> bool mask) become
    <unk> in that teacher's char and bigram ids too; inputs the student lacks stay as written.

    Precomputed marginals on the clean text are nearly the gold tags on the teachers' own
    training sentences; scored on the noisy view they say how sure the tag is when a
    character is unknown (Beyer et al. 2022, "a good teacher is patient and consistent")."""
    from data.encoding.vocab import UNK_ID

    chosen = teachers_for(texts, teachers)

    def targets(indices, drops):
        batch_texts = [texts[i] for i in indices]
        lengths = np.fromiter(map(len, batch_texts), dtype=np.int64, count=len(batch_texts))
        each = []
        for teacher in teachers:
            inputs = teacher.encoder.encode_padded(batch_texts)
            for name, drop in drops.items():
                if name in inputs:
                    inputs[name] = np.where(drop, UNK_ID, inputs[name])
            each.append(teacher_scores(teacher, inputs, lengths, temperature)[1])
        return np.stack([np.mean([each[k][row] for k in chosen[index]], axis=0)
                         for row, index in enumerate(indices)]).astype(np.float32)
    return targets


def training_texts(teacher) -> set[str]:
    """The texts a teacher was trained on (its training file, cut as training cuts it): empty
    when that file is gone, so the teacher is then taken as not having seen any."""
    from data.corpus.formats import read_corpus
    from training.tf_input import split_long

    config = teacher.config
    if not Path(config.train).exists():
        return set()
    # a teacher is any object with a config: one without the newer key reads as the default
    corpus = read_corpus(config.train, False, config.data_format, config.overlaps,
                         unreviewed=getattr(config, "unreviewed", "refuse"),
                         discontinuous=getattr(config, "discontinuous", "refuse"))
    return {chunk.text for sentence in corpus.sentences
            for chunk in split_long(sentence, config.max_len)}


def pseudo_labelled(teachers: list, texts: list[str], tags, temperature: float = 1.0
                    ) -> tuple[list[Sentence], list]:
    """Raw texts as sentences tagged by the teachers, and their marginals (at temperature)."""
    marginals, tag_ids = teacher_outputs(teachers, texts, temperature=temperature)
    sentences = [Sentence(text, tags.decode(ids), 0) for text, ids in zip(texts, tag_ids)]
    return sentences, marginals
