"""A built wheel, installed into a fresh venv, imports every subpackage (pyproject's package-dir
mapping: graphforge <- graphforge/, graphforge.passes <- passes/, graphforge.runtimes <- runtimes/)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"graphforge": "graphforge", "passes": "graphforge.passes", "runtimes": "graphforge.runtimes",
           "apps/train": "graphforge.train", "apps/serve": "graphforge.serve", "apps/cli": "graphforge.cli"}
REQUIRED = ["graphforge", "graphforge.ir", "graphforge.ops", "graphforge.trace", "graphforge.nn",
            "graphforge.passes", "graphforge.runtimes", "graphforge.runtimes.reference",
            "graphforge.runtimes.jax", "graphforge.runtimes.onnx"]


def source_packages() -> list[str]:
    """Every directory with an ``__init__.py`` under the three source roots, as a package name."""
    names = []
    for directory, package in SOURCES.items():
        for init in sorted((ROOT / directory).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / directory)
            if "__pycache__" in rel.parts:
                continue
            names.append(".".join([package, *rel.parts]))
    return names


def declared_packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def package_dir(package: str) -> Path:
    parts = package.split(".")
    root = {"passes": "passes", "runtimes": "runtimes", "train": "apps/train", "serve": "apps/serve",
            "cli": "apps/cli"}.get(parts[1]) if len(parts) > 1 else None
    if root:
        return ROOT.joinpath(root, *parts[2:])
    return ROOT.joinpath(*parts)


def test_every_subpackage_is_declared_in_pyproject():
    missing = sorted(set(source_packages()) - set(declared_packages()))
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_wheel_installs_and_imports_every_subpackage(tmp_path):
    packages = source_packages()
    assert set(REQUIRED) <= set(packages)
    # Build from a copy so the working tree gets no build/ or egg-info (others work in it too).
    src = tmp_path / "src"
    src.mkdir()
    for name in ("README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    # Packages declared in pyproject but without an __init__.py on disk are left out.
    pyproject = (ROOT / "pyproject.toml").read_text()
    for package in declared_packages():
        if not (package_dir(package) / "__init__.py").exists():
            pyproject = pyproject.replace(f'"{package}",', "")
    (src / "pyproject.toml").write_text(pyproject)
    for directory in SOURCES:
        shutil.copytree(ROOT / directory, src / directory, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("graphforge-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
    for package in packages:
        assert package.replace(".", "/") + "/__init__.py" in files, f"{package} is missing from the wheel"
    assert not any(f.startswith(("tests/", "passes/", "runtimes/")) for f in files)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)])
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])  # dependencies from the project venv
    env.pop("PYTHONHOME", None)
    probe = (
        "import importlib, sys, graphforge\n"
        f"names = {packages!r}\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(graphforge.__file__)\n"
        "import numpy as np, graphforge as gf\n"
        "g = gf.trace(lambda x: gf.relu(x) * 2.0, gf.TensorSpec(('n', 3), 'float32'))\n"
        "print(gf.run(g, [np.ones((2, 3), np.float32)])[0].sum())\n"
        "print(g.nodes[0].loc)\n"
    )
    done = run([str(python), "-c", probe], env=env, cwd=str(tmp_path))
    location, total, loc = done.stdout.strip().splitlines()[-3:]
    assert location.startswith(str(venv)), location  # the installed copy, not the working tree
    assert float(total) == 12.0
    assert loc == "<string>:7"  # user locations skip the installed graphforge frames
