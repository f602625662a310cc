"""`pip install .` installs every package of the source tree (a subpackage missing from pyproject.toml would
import here, from the checkout, and fail on a user's machine)."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).parent.parent


def test_every_package_in_the_tree_is_installed():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {"fedseed": "fedseed"} | {name: path for name, path in tool["package-dir"].items()}
    found = set()
    for name, path in dirs.items():
        for init in (ROOT / path).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / path)
            found.add(".".join([name, *rel.parts]))
    assert found - set(tool["packages"]) == set()
