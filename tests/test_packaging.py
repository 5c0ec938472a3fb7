"""The package as others install it: one version number everywhere, and a wheel built from this tree that installs
into a fresh virtual environment, holds what the package needs (its data, py.typed) and no test fixture, and runs
the README's example from there."""

import importlib.metadata
import pathlib
import re
import subprocess
import sys
import sysconfig
import zipfile

import hare_tortoise

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_and_read_everywhere():
    version = hare_tortoise.__version__
    assert importlib.metadata.version("hare-tortoise") == version
    assert re.search(r"^version: (\S+)$", (ROOT / "CITATION.cff").read_text(), re.M).group(1) == version
    assert f"## {version} " in (ROOT / "CHANGELOG.md").read_text()
    assert "dynamic = [\"version\"]" in (ROOT / "pyproject.toml").read_text()


def test_a_wheel_installs_into_a_fresh_environment_and_runs_the_readme_example(tmp_path):
    # built without network: the build backend of this environment (setuptools), no build isolation
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "dist").glob("hare_tortoise-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hare_tortoise/py.typed" in names and any(n.startswith("hare_tortoise/rl/data/") for n in names)
    assert not any("cifar_writer" in n or n.startswith("tests/") for n in names)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "fresh")], check=True, timeout=300)
    fresh = tmp_path / "fresh" / "bin" / "python"
    site = subprocess.run([str(fresh), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the wheel into the fresh environment; torch (which needs gigabytes to fetch) from this one, after it
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", site, str(wheel)],
                   check=True, capture_output=True, timeout=600)
    (pathlib.Path(site) / "zz_torch_from_the_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    example = re.search(r"## The method in your own training loop\n```python\n(.*?)```",
                        (ROOT / "README.md").read_text(), re.S).group(1)
    script = example + "import hare_tortoise\nprint(hare_tortoise.__file__, float(accuracy))\n"
    result = subprocess.run([str(fresh), "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    where, accuracy = result.stdout.split()
    assert where.startswith(site) and 0.0 <= float(accuracy) <= 1.0
