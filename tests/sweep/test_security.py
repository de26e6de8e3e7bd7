"""Security: nothing in a spec, a dataset or a results folder can run code; no credentials in the
repository; a local Ray's dashboard listens on 127.0.0.1 only.

Static checks (the source, parsed with ``ast``) say what the code can never do; behavioural checks
feed it the hostile input and watch what happens.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import subprocess
from pathlib import Path

import pytest
from sweeptest import REPO

from sweep.distributed.scan import scan_done
from sweep.distributed.store import open_output, read_failed
from sweep.distributed.experiment_record import check_experiment, stored_spec
from sweep.distributed.spec import load_preset, load_spec
from sweep.distributed.ray_connect import DASHBOARD_HOST, ray_init_kwargs

# Modules that read spec files, results folders or their records: none may deserialize with pickle.
READERS = sorted(str(p.relative_to(REPO)) for pattern in ("sweep/distributed/*.py", "analysis/*.py", "sweep/cli*.py",
                                                          "sweep/contract.py") for p in REPO.glob(pattern))
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def call_name(node: ast.Call) -> str:
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


# ---- spec files: data only --------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {flag}']",
    "!!python/object/new:subprocess.Popen [['touch', '{flag}']]",
    "!!python/name:os.system",
])
def test_a_yaml_spec_with_python_tags_is_rejected_not_executed(tmp_path, payload):
    flag = tmp_path / "PWNED"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: {payload.format(flag=flag)}\ndataset: digits\n")
    with pytest.raises(ValueError, match=r"evil\.yaml: not valid YAML: could not determine a constructor"):
        load_spec(path)
    assert not flag.exists()


def test_spec_files_are_parsed_with_safe_loaders_only():
    tree = ast.parse((REPO / "sweep/distributed/spec.py").read_text())
    yaml_calls = {call_name(c) for c in calls(tree) if call_name(c).startswith("yaml.")}
    assert yaml_calls <= {"yaml.YAMLError"}  # no yaml.load / full_load / unsafe_load anywhere
    loaders = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Loader"]
    assert [ast.unparse(b) for n in loaders for b in n.bases] == ["yaml.SafeLoader"]
    for path in ["sweep/distributed/spec.py", "sweep/distributed/experiment_record.py", "sweep/distributed/driver.py",
                 "sweep/cli.py", "sweep/cli_sweep.py", "sweep/cli_trial.py"]:
        source = (REPO / path).read_text()
        assert not re.search(r"yaml\.(load|unsafe_load|full_load|load_all)\(|Loader=|\beval\(|\bexec\(", source), path


def test_the_stored_spec_of_a_results_folder_goes_through_the_same_validation(tmp_path):
    out = open_output(str(tmp_path))
    (tmp_path / "experiment.json").write_text('{"identity": {}, "spec": {"name": "x", "__class__": "os.system"}}')
    with pytest.raises(ValueError, match=r"unknown key\(s\) '__class__'"):
        stored_spec(out)


# ---- results folders: never unpickled --------------------------------------------------------
@pytest.mark.parametrize("path", READERS)
def test_readers_of_results_never_import_an_unpickler(path):
    tree = ast.parse((REPO / path).read_text())
    assert not imported_modules(tree) & UNPICKLERS, path
    for call in calls(tree):
        name = call_name(call)
        assert not name.endswith(("read_pickle", "torch.load")), f"{path}: {name}"
        if name.endswith(("np.load", "numpy.load")):  # only ever with allow_pickle=False
            assert any(k.arg == "allow_pickle" and getattr(k.value, "value", None) is False
                       for k in call.keywords), f"{path}: {name} without allow_pickle=False"


def test_reading_a_hostile_results_folder_unpickles_nothing(tmp_path, monkeypatch):
    import pickle

    flag = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (flag,))

    out = tmp_path / "out"
    for folder in ("trials", "confusion", "failed"):
        (out / folder).mkdir(parents=True)
        (out / folder / "0123456789abcdef.parquet").write_bytes(pickle.dumps(Evil()))  # a pickle where Parquet belongs
    (out / "failed" / "x.json").write_bytes(pickle.dumps(Evil()))
    (out / "experiment.json").write_bytes(pickle.dumps(Evil()))

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    handle = open_output(str(out))
    scan = scan_done(handle)
    assert scan.done == frozenset() and len(scan.corrupt) == 2  # named as corrupt, not opened
    assert read_failed(handle) == {}
    with pytest.raises(ValueError, match="is not a valid experiment record"):
        check_experiment(handle, load_preset("quick"))
    from analysis import load_results

    with pytest.raises(ValueError):
        load_results(out)
    assert not flag.exists()


def test_the_project_never_installs_a_pyarrow_that_unpickles_extension_types():
    """Parquet files carry no code, as long as pyarrow does not unpickle extension types
    (CVE-2023-47248, fixed in pyarrow 14.0.1): the project's own requirement must exclude the rest."""
    import tomllib

    requirements = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floor = next(re.fullmatch(r"pyarrow>=([\d.]+)", r.split(";")[0].strip()) for r in requirements
                 if r.startswith("pyarrow"))
    assert floor is not None, "pyarrow must have a >= floor"
    assert tuple(int(x) for x in floor.group(1).split(".")) >= (14, 0, 1)


# ---- the repository: no credentials ----------------------------------------------------------
SECRETS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret access key": r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}",
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "GitHub token": r"\bgh[pousr]_[A-Za-z0-9]{36}\b",
    "Slack token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "password in a URL": r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s:@'\"{}$]+@",
}


def repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.splitlines()
        files = [REPO / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but the usual junk
        files = [p for p in REPO.rglob("*") if not {".git", "__pycache__", "results"} & set(p.parts)]
    return [p for p in files if p.is_file() and p.stat().st_size < 2_000_000]


def test_the_patterns_would_catch_a_credential():
    fake = ("AKIA" + "ABCDEFGHIJKLMNOP", "aws_secret_access_key = " + "a" * 40,
            "-----BEGIN RSA " + "PRIVATE KEY-----", "https://user:" + "hunter2@example.com/x")
    for text in fake:
        assert any(re.search(p, text) for p in SECRETS.values()), text


def test_no_credentials_in_the_repository():
    files = repository_files()
    assert any(p.name == "cluster.yaml" for p in files)
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(REPO)}: {what}" for what, p in SECRETS.items() if re.search(p, text)]
    assert found == []


# ---- Ray: ports on localhost ------------------------------------------------------------------
def test_a_local_ray_binds_its_dashboard_to_localhost_and_starts_it_only_when_asked(monkeypatch):
    monkeypatch.setenv("SWEEP_KEEP_FREED_MEMORY", "0")  # the allocator's worker env: tested below
    assert DASHBOARD_HOST == "127.0.0.1"
    plain = ray_init_kwargs(None, verbose=False, dashboard=False, num_cpus=2)
    assert plain == {"address": "local", "num_cpus": 2, "include_dashboard": False, "dashboard_host": "127.0.0.1",
                     "log_to_driver": False, "logging_level": logging.ERROR}
    asked = ray_init_kwargs(None, verbose=True, dashboard=True, num_cpus=None)
    assert asked["include_dashboard"] is True and asked["dashboard_host"] == "127.0.0.1"
    assert asked["log_to_driver"] is True


def test_joining_a_cluster_changes_none_of_its_settings(monkeypatch):
    monkeypatch.setenv("SWEEP_KEEP_FREED_MEMORY", "0")
    assert ray_init_kwargs("ray://head:10001", verbose=False, dashboard=True, num_cpus=8) == {
        "address": "ray://head:10001", "log_to_driver": False, "logging_level": logging.ERROR}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's variables: Linux only")
def test_workers_get_the_allocator_environment_and_nothing_else(monkeypatch):
    for key in ("SWEEP_KEEP_FREED_MEMORY", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(key, raising=False)
    env = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
    for address in (None, "ray://head:10001"):
        kwargs = ray_init_kwargs(address, verbose=False, dashboard=False, num_cpus=2)
        assert kwargs.pop("runtime_env") == {"env_vars": env}  # a job-level env for this sweep's workers only
        monkeypatch.setenv("SWEEP_KEEP_FREED_MEMORY", "0")
        assert ray_init_kwargs(address, verbose=False, dashboard=False, num_cpus=2) == kwargs
        monkeypatch.delenv("SWEEP_KEEP_FREED_MEMORY")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # a user's own setting wins
    assert "MALLOC_ARENA_MAX" not in ray_init_kwargs(None, verbose=False, dashboard=False, num_cpus=2)[
        "runtime_env"]["env_vars"]


def test_connect_ray_uses_exactly_these_kwargs(monkeypatch):
    ray = pytest.importorskip("ray")
    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "restored after the test")
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED")
    from sweep.distributed.ray_connect import connect_ray

    assert connect_ray(None, verbose=False, dashboard=False, num_cpus=3) is True
    assert seen == ray_init_kwargs(None, verbose=False, dashboard=False, num_cpus=3)
    import os

    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"  # no usage report leaves the machine

