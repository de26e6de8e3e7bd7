"""The folders are the architecture: the engine never reaches up to the distributed layer or Ray,
checking a config or a grid needs no torch, and `analysis` needs neither torch nor Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports_after(statement: str) -> set[str]:
    """Top-level packages in sys.modules after ``statement`` runs in a fresh interpreter."""
    probe = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def test_running_a_trial_never_imports_ray():
    loaded = _imports_after("import sweep.engine.trial, sweep.engine.datasets, sweep.engine.fit")
    assert "torch" in loaded  # the probe really imported the engine
    assert "ray" not in loaded


@pytest.mark.parametrize("module", ["sweep.engine.config", "sweep.engine.fit", "sweep.distributed.spec",
                                    "sweep.contract", "sweep.cli", "sweep.cli_args", "sweep.cli_trial",
                                    "sweep.cli_sweep"])
def test_checking_configs_and_grids_imports_neither_torch_nor_ray(module):
    loaded = _imports_after(f"import {module}")
    assert not loaded & {"torch", "ray"}, module


@pytest.mark.parametrize("path", sorted((REPO / "sweep" / "engine").glob("*.py")), ids=lambda p: p.name)
def test_no_engine_module_imports_the_distributed_layer_or_ray(path):
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            assert not name.startswith(("ray", "sweep.distributed", "sweep.cli")), f"{path.name} imports {name}"
