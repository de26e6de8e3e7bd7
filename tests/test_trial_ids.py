"""Trial ids name results on disk: every preset's and each noise mode's ids stay what they were.

``tests/golden/trial_ids.json`` was recorded from the code before the engine/distributed split
(the hash of every trial id of each grid, its first ids and the experiment identity that
``experiment.json`` holds). A change that alters any of them would orphan existing results folders.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sweep.distributed.spec import PRESETS, load_preset, spec_from_dict

GOLDEN = json.loads((Path(__file__).parent / "golden" / "trial_ids.json").read_text())


def _summary(spec) -> dict:
    ids = [c.trial_id for c in spec.trials()]
    return {"count": len(ids), "first": ids[:3], "last": ids[-1],
            "sha256_of_ids": hashlib.sha256("\n".join(ids).encode()).hexdigest()}


@pytest.mark.parametrize("name", sorted(GOLDEN["presets"]))
def test_preset_trial_ids_are_unchanged(name):
    assert name in PRESETS
    expected = {k: v for k, v in GOLDEN["presets"][name].items() if k != "experiment_identity"}
    assert _summary(load_preset(name)) == expected


@pytest.mark.parametrize("mode", sorted(GOLDEN["specs"]))
def test_spec_trial_ids_of_each_noise_mode_are_unchanged(mode):
    golden = GOLDEN["specs"][mode]
    expected = {k: v for k, v in golden.items() if k not in ("spec", "experiment_identity")}
    assert _summary(spec_from_dict(golden["spec"])) == expected


def test_every_noise_mode_has_a_golden_spec():
    from sweep.engine.noise import NOISE_MODES

    assert {GOLDEN["specs"][m]["spec"]["noise_mode"] for m in GOLDEN["specs"]} == set(NOISE_MODES)
