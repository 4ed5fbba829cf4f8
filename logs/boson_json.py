import json
from pathlib import Path
runs = {"boson400-scratch": "e34ebff", "boson400-transfer": "a1dca31", "boson-scratch": "e34ebff",
        "boson-transfer": "a1dca31", "boson400-scratch-s2": "a651c9a", "boson400-transfer-s2": "a651c9a"}
out = {}
for run, commit in runs.items():
    p = Path("runs") / run
    if not (p / "metrics.json").exists():
        continue
    m = json.loads((p / "metrics.json").read_text())
    c = json.loads((p / "config.json").read_text())
    out[run] = {"commit": commit, "train": c["train"], "init_from": c["init_from"], "seed": c["seed"],
                "epochs": c["epochs"], "epoch_min_steps": c["epoch_min_steps"],
                "lexicon_char_priors": c["lexicon_char_priors"], "best_epoch": m["best_epoch"],
                "epochs_run": m["epochs_run"], "train_seconds": m["train_seconds"],
                **{split: {"f1": round(m[split]["micro"]["f1"], 4),
                           "per_type_f1": {t: round(v["f1"], 4) for t, v in m[split]["per_type"].items()}}
                   for split in ("dev", "test")}}
Path("docs/results/boson/metrics.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
print(list(out))
