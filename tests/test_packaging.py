"""The wheel is a complete package: every module, every config file under harness/conf, the console script,
the licence. (`pip install` of the wheel into a fresh venv, run from an empty folder, is shown in the README.)"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # What the build reads, copied, so the build's own folders (build/, *.egg-info) stay out of the checkout.
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for folder in ("harness", "conf"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out / "dist"), str(src)], check=True, timeout=300)
    (built,) = (out / "dist").glob("unclip_harness-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_every_module_and_config_file(wheel):
    names = set(wheel.namelist())
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "harness").rglob("*.py")}
    configs = {"harness/conf/" + str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert modules - names == set()
    assert configs - names == set()
    assert "harness/conf/config.yaml" in names and "harness/conf/experiment/quick.yaml" in names
    pilots = {"harness/conf/" + str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf" / "pilots").glob("*.json")}
    assert pilots and pilots - names == set()  # one-seed runs of a piloted recipe borrow its seed variance


def test_wheel_declares_the_console_script_and_the_licence(wheel):
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    assert parser["console_scripts"]["unclip-harness"] == "harness.cli:main"
    assert any(n.endswith("LICENSE") for n in wheel.namelist())
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    text = wheel.read(metadata).decode()
    assert "Name: unclip-harness" in text and "License-Expression: MIT" in text
