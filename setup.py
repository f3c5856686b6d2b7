"""Map the repository folders into the single ``rlbridge`` import package.

``engine/`` is ``rlbridge``, ``plugins/`` is ``rlbridge.plugins`` and ``strategies/`` is
``rlbridge.strategies``.  The package list is computed with ``find_packages()`` in each folder so
that a new subpackage can never be silently left out of a wheel; ``tests/test_packaging.py``
checks a freshly built wheel against this list.
"""

from setuptools import find_packages, setup

ROOTS = {"rlbridge": "engine", "rlbridge.plugins": "plugins", "rlbridge.strategies": "strategies"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for package, folder in ROOTS.items():
        packages.append(package)
        package_dir[package] = folder
        for sub in find_packages(folder):
            packages.append(f"{package}.{sub}")
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
