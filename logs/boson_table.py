import json, sys
from pathlib import Path
rows = [("400 documents", "boson400-scratch", "boson400-transfer"), ("1,600 documents (all)", "boson-scratch", "boson-transfer")]
types = ["person_name", "location", "org_name", "company_name", "product_name", "time"]
def f(m, split, t=None):
    s = m[split]["micro"] if t is None else m[split]["per_type"][t]
    return s["f1"]
print("| training set | start | dev F1 | test F1 | best epoch | " + " | ".join(f"{t} (test)" for t in types) + " |")
print("|---|---|---|---|---|" + "---|" * len(types))
for label, a, b in rows:
    for name, run in (("scratch", a), ("`--init-from runs/default`", b)):
        p = Path("runs") / run / "metrics.json"
        if not p.exists():
            print(f"| {label} | {name} | (running) |"); continue
        m = json.loads(p.read_text())
        print(f"| {label} | {name} | {f(m,'dev'):.4f} | {f(m,'test'):.4f} | {m['best_epoch']}/{m['epochs_run']} | " + " | ".join(f"{f(m,'test',t):.3f}" for t in types) + " |")
print()
print("| training set | start | " + " | ".join(f"{t} (dev)" for t in types) + " |")
print("|---|---|" + "---|" * len(types))
for label, a, b in rows:
    for name, run in (("scratch", a), ("`--init-from runs/default`", b)):
        p = Path("runs") / run / "metrics.json"
        if not p.exists(): continue
        m = json.loads(p.read_text())
        print(f"| {label} | {name} | " + " | ".join(f"{f(m,'dev',t):.3f}" for t in types) + " |")
