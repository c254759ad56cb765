"""Every monitoring module imports on its own, first, in a fresh interpreter: an import cycle
among them (the rollup, the experiment report and the stats read each other's rules) fails
only for whoever happens to import the wrong one first, so each one is tried first."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import cartpredict.monitoring

MODULES = sorted(
    f"cartpredict.monitoring.{m.name}"
    for m in pkgutil.iter_modules(cartpredict.monitoring.__path__)
)


def test_the_monitoring_modules_are_all_tried() -> None:
    assert {"cartpredict.monitoring.rollup", "cartpredict.monitoring.stats",
            "cartpredict.monitoring.experiment"} <= set(MODULES)  # fmt: skip


@pytest.mark.parametrize("module", MODULES)
def test_a_monitoring_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
