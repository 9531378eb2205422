import pathlib
import sys

# Make ``tests.harness`` importable under --import-mode=importlib.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
