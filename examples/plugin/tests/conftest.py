import sys
from pathlib import Path

# the example runs from a checkout without being installed: its module is importable from src/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
