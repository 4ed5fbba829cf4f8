# Finish runs/default after epoch 7 (its best; epochs 8-10 are known not to improve on this CPU kind)
import json
from pathlib import Path
from data.quiet import import_tensorflow_quietly
import_tensorflow_quietly()
from data.corpus.formats import read_corpus
from models.config import TrainConfig
from training.loop import finish
from training.run_files import load_vocabularies
from training.tf_input import encode_corpus
run = Path("runs/default")
config = TrainConfig.load(run / "config.json")
encoder, tags = load_vocabularies(run)
encoded = {name: encode_corpus(read_corpus(path).sentences, encoder, tags)
           for name, path in (("dev", config.dev), ("test", config.test))}
state = json.loads((run / "checkpoint" / "state.json").read_text())
finish(run, config, encoded, tags, state, print)
