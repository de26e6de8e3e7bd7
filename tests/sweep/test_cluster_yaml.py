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


def _python_of(image: str) -> tuple[int, int] | None:
    """(3, 11) from a rayproject/ray tag such as 2.60.0-py311-gpu; None when the tag does not say."""
    found = re.search(r":[^:]*-py(\d)(\d+)(?:-|$)", image)
    return (int(found[1]), int(found[2])) if found else None


def test_every_node_runs_an_image_with_the_python_and_ray_the_project_needs(cluster_config):
    # Ray's default AWS AMI is an Ubuntu 18.04 DLAMI whose Python cannot install this project.
    needed = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)', (REPO / "pyproject.toml").read_text())
    needed = (int(needed[1]), int(needed[2]))
    ray_pin = re.search(r"ray\[[^\]]*\]==([\d.]+)", " ".join(cluster_config["setup_commands"]))[1]
    docker = cluster_config.get("docker") or {}
    for name, node_type in cluster_config["available_node_types"].items():
        key = "head_image" if name == cluster_config["head_node_type"] else "worker_image"
        image = docker.get(key) or docker.get("image")
        if image is None:  # no container: the node's own AMI must be named (and its Python checked by hand)
            assert node_type["node_config"].get("ImageId"), f"{name} names no docker image and no ImageId"
            continue
        assert image.startswith("rayproject/ray:"), image
        assert _python_of(image) is not None and _python_of(image) >= needed, (image, needed)
        assert image.split(":")[1].startswith(f"{ray_pin}-"), (image, ray_pin)  # the Ray that setup pins


def test_the_image_check_would_catch_an_old_python():
    assert _python_of("rayproject/ray:2.60.0-py39-gpu") == (3, 9) < (3, 11)
    assert _python_of("rayproject/ray:2.60.0-py311-cpu") == (3, 11)
    assert _python_of("rayproject/ray:2.60.0-gpu") is None  # unpinned Python: the test above refuses it
