"""No file of the project keeps a merge-conflict marker (one survived in a module docstring once, where Python
still imported it and every test passed)."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".cu", ".cuh", ".toml", ".txt", ".cfg", ".sh"}


def test_no_merge_conflict_markers():
    files = [p for p in ROOT.rglob("*") if p.is_file() and (p.suffix in SUFFIXES or p.parent.name == ".ci")
             and not {".git", ".venv", "venv", "build", "runs"} & set(p.relative_to(ROOT).parts)]
    assert len(files) > 100
    marked = [str(p.relative_to(ROOT)) for p in files if MARKER.search(p.read_text(errors="replace"))]
    assert marked == [], f"merge-conflict markers left in: {marked}"
