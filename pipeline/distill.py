"""`python -m pipeline.distill --teacher runs/T --out runs/S [student flags] [--unlabeled F...]`:
train a student run on its teachers' soft targets, and on raw text the teachers tag.

The student is any model `pipeline.train` can build (every training flag applies: size,
bigrams, lexicon features...) and an ordinary run folder: early stopping on dev F1, --resume,
export and serving unchanged; its config.json records the teachers and raw-text files.
Soft targets: each teacher's per-character tag marginals (CRF forward-backward over its
emissions), averaged over `--teacher` runs, cross-fitted: a sentence's targets come from the
teachers not trained on it where there are such (train K teachers on K parts of the data and
each part is scored by teachers that never saw it). The loss is (1 - soft weight) * CRF NLL
of the tags + soft weight * cross-entropy of the student's CRF marginals against the
teachers', both computed at `--temperature T` (scores divided by T; the soft term scaled by T**2).
`--teacher-view student`: the teachers score, each epoch, the text as the student sees it, with
the same characters and bigrams turned <unk>, instead of once on the clean text.
`--unlabeled FILE`: plain text, one text a line (any length; long lines are cut as serving
cuts them), streamed; the teachers tag it and it joins the training data. Invalid UTF-8 or
an empty file stops with FILE:LINE and exit code 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from models.config import TEACHER_VIEWS
from pipeline.train import build_parser, not_a_run_folder, run_command


def parse_args(argv):
    parser = build_parser("python -m pipeline.distill", __doc__)
    parser.add_argument("--teacher", dest="teachers", action="append", required=True,
                        metavar="RUN", help="a trained run folder; repeat to average several")
    parser.add_argument("--unlabeled", dest="unlabeled", action="extend", nargs="+",
                        metavar="FILE", help="plain-text files the teachers tag for training")
    parser.add_argument("--soft-weight", dest="soft_weight", type=float,
                        help="share of the loss given to the teachers' marginals (default 0.5)")
    parser.add_argument("--temperature", dest="temperature", type=float,
                        help="divide teacher and student CRF scores by T before comparing their "
                             "marginals; the soft loss is scaled by T squared (default 1)")
    parser.add_argument("--teacher-view", dest="teacher_view", choices=TEACHER_VIEWS,
                        help="the text the teachers' marginals are computed on: clean = once, "
                             "as written (default); student = every epoch, with the same "
                             "characters and bigrams turned <unk> (--unk-rate) that the "
                             "student sees (one teacher pass over the data an epoch)")
    args = parser.parse_args(argv)
    for path in args.teachers:
        problem = not_a_run_folder("--teacher", path)
        if problem:
            parser.error(problem)
    for path in args.unlabeled or []:
        if not Path(path).is_file():
            parser.error(f"--unlabeled {path}: no such file")
    if args.soft_weight is not None and not 0 <= args.soft_weight <= 1:
        parser.error("--soft-weight must be between 0 and 1")
    if args.temperature is not None and not args.temperature > 0:
        parser.error("--temperature must be above 0")
    return args


def main(argv=None) -> int:
    return run_command(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
