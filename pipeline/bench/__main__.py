"""`python -m pipeline.bench`: see pipeline/bench/command.py."""
import sys

from pipeline.bench.command import main

sys.exit(main())
