"""Put on PYTHONPATH by tests that start animegan-train as a separate process and need the
stand-in FID feature extractor (tests/conftest.py) registered in it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from conftest import register_standin_extractor  # noqa: E402

register_standin_extractor()
