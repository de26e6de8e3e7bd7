"""cluster.yaml passes Ray's own autoscaler config validation, offline, and keeps its promises."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from sweeptest import REPO

util = pytest.importorskip("ray.autoscaler._private.util")


@pytest.fixture
def cluster_config() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_is_valid_for_the_ray_autoscaler(cluster_config):
    prepared = util.prepare_config(copy.deepcopy(cluster_config))  # fills AWS defaults, no network
    util.validate_config(prepared)  # Ray's JSON schema + its cross-field checks
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # the head runs no trials
    workers = [t for name, t in prepared["available_node_types"].items() if name != prepared["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 4 and t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
               and t["max_workers"] > t["min_workers"] for t in workers)


def test_validation_would_catch_a_mistake(cluster_config):
    broken = copy.deepcopy(cluster_config)
    broken["available_node_types"]["gpu_worker"]["min_worker"] = 1  # typo of min_workers
    with pytest.raises(Exception, match="min_worker"):
        util.validate_config(util.prepare_config(broken))


def test_cluster_yaml_has_no_credentials_and_a_private_dashboard(cluster_config):
    text = (REPO / "cluster.yaml").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|AWS_SECRET|ssh_private_key", text, re.I)
    assert "--dashboard-host=127.0.0.1" in " ".join(cluster_config["head_start_ray_commands"])
    setup = " ".join(cluster_config["setup_commands"])
    assert "pip install" in setup and "load_dataset('cifar10')" in setup
