"""One typed config per training run, saved as config.json beside the run's artifacts."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

MSRA_TRAIN, MSRA_DEV, MSRA_TEST = "data/msra/train.txt", "data/msra/dev.txt", "data/msra/test.txt"
CHAR_PRIOR_CHOICES = ("auto", "on", "off")
TEACHER_VIEWS = ("clean", "student")
# Char priors pay where characters are too rarely seen to learn from and cost speed elsewhere:
# on below this many training characters (docs/results.md, "Character priors").
CHAR_PRIORS_AUTO_CHARS = 150_000


@dataclass
class TrainConfig:
    train: str = MSRA_TRAIN
    dev: str = MSRA_DEV
    test: str | None = None  # scored at the end only; never used for any choice
    out: str = "runs/default"
    # model
    embedding_dim: int = 128
    hidden_size: int = 128
    layers: int = 1
    # batch 32, lr 5e-3, dropout 0.1: the MSRA tuner search's choice, confirmed on dev by a full
    # run (docs/results.md, "Tuning")
    dropout: float = 0.1
    embedding_dropout: float = 0.5
    bigrams: bool = True
    # 32, not 64: the bigram table memorises (docs/results.md, "Bigram embedding")
    bigram_dim: int = 32
    # lexicon: "jieba" (jieba 0.42.1's dictionary), a word-list file, or "none"
    lexicon: str = "jieba"
    lexicon_features: str = "flags"  # flags | words | both | none (data/lexicon/features.py)
    word_dim: int = 32  # word embedding size ("words"/"both")
    word_top_k: int = 3  # words kept per B/M/E/S set, most frequent first
    # flags: also one per frequency class of the words in each set (0: none; see
    # data/lexicon/features.py frequency_class_of)
    lexicon_frequency_classes: int = 0
    # also each character's own lexicon statistics, out of context (data/lexicon/features.py
    # char_prior_table), as a frozen table inside the model: on | off | auto (on when the
    # training text is shorter than CHAR_PRIORS_AUTO_CHARS; the saved config records which)
    lexicon_char_priors: str = "auto"
    # K > 0: the training file's entities join the lexicon (data/lexicon/train_entities.py), each of K
    # consecutive folds of training sentences encoded with the other folds' entities only;
    # dev and serving use them all. 0: off
    lexicon_train_entities: int = 0
    # vocabulary
    char_min_count: int = 1
    bigram_min_count: int = 2
    word_min_count: int = 2  # lexicon words matched this often in train get their own row
    # training
    unk_rate: float = 0.15  # share of input ids replaced by <unk> while training (word dropout)
    batch_size: int = 32
    lr: float = 5e-3
    lr_decay: float = 0.05  # lr / (1 + lr_decay * epoch)
    clipnorm: float = 5.0
    weight_average: float = 0.999  # decay of the weight average used for dev and the saved model; 0: off
    # warmup N: its decay capped at (1 + step) / (N + step), as tf.train does; 0: no cap, an
    # average that starts empty, bias-corrected (averaging.py), which keeps more than a small
    # run's last few hundred steps (docs/results.md, "The weight average")
    weight_average_warmup: int = 0
    # adversarial training (FGM): each step also fits the trained embeddings moved against the
    # model along the loss gradient, by this root-mean-square size per character; 0: off. It
    # doubles a training step's time; the served network is unchanged (docs/results.md,
    # "Adversarial training")
    adversarial: float = 0.5
    epochs: int = 14
    # an epoch is at least this many steps: a small training set is passed over several times
    # per epoch (training/tf_input.py passes_per_epoch); 0 = one pass an epoch
    epoch_min_steps: int = 1000
    patience: int = 3  # epochs without a better dev F1 before stopping
    max_len: int = 200  # longer training sentences are cut into chunks of at most this
    seed: int = 42
    strict: bool = False  # invalid BMES transitions are errors, not warnings
    # distillation (python -m pipeline.distill): teacher run folders, their marginals' share of
    # the loss, and raw-text files the teachers tag as extra training data
    teachers: list[str] = field(default_factory=list)
    soft_weight: float = 0.5
    # both sides' CRF scores are divided by it before their marginals are compared (Hinton's
    # softening; the soft loss is scaled by its square so its gradients keep their size)
    temperature: float = 1.0
    # the text the teachers' marginals are computed on: "clean" = once, as written; "student"
    # = each epoch, with the characters and bigrams the student sees as <unk> (unk_rate)
    # turned <unk> for the teachers too (training/distillation.py student_view_targets)
    teacher_view: str = "clean"
    unlabeled: list[str] = field(default_factory=list)
    # a trained run this one starts from wherever layers' roles and shapes match (embedding rows
    # by token, the Bi-LSTM, emissions and CRF of an equal tag set: training/warm_start.py);
    # None: random start
    init_from: str | None = None
    # with init_from: the first N epochs train only the layers that start fresh, the ones taken
    # from init_from frozen; then all, with a new optimizer (0: all from the start)
    init_frozen_epochs: int = 0
    data_format: str | None = None  # None: detected per file (data/corpus/formats.py FORMS)
    overlaps: str = "refuse"  # overlapping spans in span files: refuse | keep-longest | keep-first
    unreviewed: str = "refuse"  # Label Studio tasks with predictions only: refuse | predictions | skip
    discontinuous: str = "refuse"  # brat entities with text between fragments: refuse | outer

    def __post_init__(self):
        if not self.adversarial >= 0:
            raise ValueError(f"adversarial must be 0 (off) or above, got {self.adversarial}")
        if self.init_frozen_epochs < 0 or (self.init_frozen_epochs and not self.init_from):
            raise ValueError("init_frozen_epochs must be 0, or above with init_from (a run to "
                             f"start from), got {self.init_frozen_epochs}")
        if self.teacher_view not in TEACHER_VIEWS:
            raise ValueError(f"teacher_view {self.teacher_view!r}: expected one of "
                             f"{', '.join(TEACHER_VIEWS)}")

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        values = json.loads(Path(path).read_text())
        # runs saved before the key existed averaged with tf.train's cap of 10 (the default
        # then): a resumed one must go on as it started
        values.setdefault("weight_average_warmup", 10)
        # and without adversarial steps (the default before the key existed)
        values.setdefault("adversarial", 0.0)
        # before "auto", runs had no char priors, then on/off as true/false
        priors = values.get("lexicon_char_priors", False)
        if isinstance(priors, bool):
            values["lexicon_char_priors"] = "on" if priors else "off"
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}")
        return cls(**values)

    @property
    def uses_lexicon(self) -> bool:
        return self.lexicon != "none" and self.lexicon_features != "none"

    def resolve_char_priors(self, training_chars: int) -> bool:
        """Whether this run uses char priors; "auto" becomes the choice made, so the saved
        config reproduces the run (and a resumed one goes on as it started)."""
        if self.lexicon_char_priors not in CHAR_PRIOR_CHOICES:
            raise ValueError(f"lexicon_char_priors {self.lexicon_char_priors!r}: expected one of "
                             f"{', '.join(CHAR_PRIOR_CHOICES)}")
        if self.lexicon_char_priors == "on" and not self.uses_lexicon:
            raise ValueError("char priors come from the lexicon: --lexicon-char-priors on "
                             "needs lexicon features (not --no-lexicon)")
        if self.lexicon_char_priors == "auto":
            small = training_chars < CHAR_PRIORS_AUTO_CHARS
            self.lexicon_char_priors = "on" if small and self.uses_lexicon else "off"
        return self.lexicon_char_priors == "on"

    def model_settings(self) -> dict:
        return dict(embedding_dim=self.embedding_dim, hidden_size=self.hidden_size,
                    layers=self.layers, dropout=self.dropout,
                    embedding_dropout=self.embedding_dropout)

    def learning_rate(self, epoch: int) -> float:
        return self.lr / (1.0 + self.lr_decay * epoch)
