"""`python -m bench`: the load benchmark (see bench/__main__.py)."""

from pathlib import Path

# The repository checkout the benchmark runs from: the one definition in bench/.
REPO_ROOT = Path(__file__).resolve().parent.parent
