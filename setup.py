"""The package list of the one installed name (issue #23, docs/architecture.md).

The repository keeps the design card's top-level folders (core/, ports/, adapters/,
entrypoints/); installed, they are genstudio.core, genstudio.ports, ... because
pyproject's package-dir maps the package ``genstudio`` to the repository root. setuptools'
declarative find cannot prefix the names it finds, hence these few lines.
"""

from setuptools import find_packages, setup

LAYERS = ("core", "ports", "adapters", "entrypoints", "testing")

setup(
    packages=["genstudio"]
    + [f"genstudio.{name}" for name in find_packages(include=[f"{layer}*" for layer in LAYERS])],
)
