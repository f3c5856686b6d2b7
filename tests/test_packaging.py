"""Packaging: a wheel built from the tree holds every subpackage, the sample data and the entry points,
and a normal (non-editable) install of it works."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"engine": "rlbridge", "plugins": "rlbridge/plugins", "strategies": "rlbridge/strategies"}


def tree_packages():
    """Every folder with an __init__.py under the mapped roots, as wheel paths."""
    found = set()
    for folder, target in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder)
            found.add(str(Path(target, rel)) if str(rel) != "." else target)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    build_dir = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_NO_INDEX": "1"}, cwd=build_dir,
    )
    [path] = out.glob("rlbridge-*.whl")
    return path


@pytest.mark.slow
def test_wheel_contains_every_subpackage_and_the_sample_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    assert tree_packages() <= packages, f"missing from the wheel: {tree_packages() - packages}"
    sample = [n for n in names if n.startswith("rlbridge/sample_data/etf-daily/") and n.endswith(".csv")]
    assert len(sample) == 12
    assert "rlbridge/sample_data/PROVENANCE.md" in names
    assert "rlbridge/py.typed" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "rlbridge = rlbridge.cli:main" in text
    assert "[pytest11]\nrlbridge = rlbridge.testing" in text
    assert not [n for n in names if n.startswith(("tests/", "engine/", "plugins/"))]


@pytest.mark.slow
def test_a_normal_install_of_the_wheel_runs(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    code = (
        "import rlbridge, rlbridge.sample_data as s, rlbridge.plugins.feeds.csv;"
        "from rlbridge.manager import make_plugin_manager;"
        "pm = make_plugin_manager(entrypoints=False);"
        "assert not pm.failures, pm.failures;"
        "print(rlbridge.__file__); print(sorted(pm.registries['feeds'].names()));"
        "print(len(s.load(['SPY'], start='2020-01-01', end='2020-12-31')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path, check=True)
    first, feeds, bars = out.stdout.strip().splitlines()
    assert first.startswith(str(target))  # imported from the installed copy, not the tree
    assert "csv" in feeds and "sample" in feeds
    assert bars == "253"  # NYSE sessions in 2020
