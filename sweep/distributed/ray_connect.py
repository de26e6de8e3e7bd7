"""Reaching Ray: joining a cluster (with a deadline ray.init lacks) or starting a local one.

``sweep run`` joins a cluster only after a throwaway process has joined it within
``RAY_CONNECT_TIMEOUT_S`` (``probe_ray``), so an address that does not answer is one line and
exit code 2 instead of minutes of retries, and nothing in OUT has changed by then.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Any


def check_reachable(address: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast, with one line, when a Ray address cannot be reached (ray.init may hang for long)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"Ray address must look like host:port, ray://host:port or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ValueError(f"cannot reach the Ray cluster at {address!r} ({exc}); "
                         "check --address / RAY_ADDRESS and that the cluster is up") from None


DASHBOARD_HOST = "127.0.0.1"  # a local Ray's dashboard (and its minimal stand-in) listens here only


def ray_init_kwargs(address: str | None, *, verbose: bool, dashboard: bool,
                    num_cpus: int | None) -> dict[str, Any]:
    """The arguments of the driver's ``ray.init``: joining ``address``, or starting a local Ray.

    A local Ray binds its dashboard to 127.0.0.1 (reach a remote one through ``ray dashboard`` /
    an SSH tunnel) and starts it only with ``--dashboard``; Ray's logs reach the terminal only
    with ``--verbose``. A cluster we join keeps its own settings. Either way the job's workers get
    the allocator's environment (``sweep.engine.malloc_tuning.worker_env``), unless the user turned it off.
    """
    from sweep.engine.malloc_tuning import worker_env

    quiet = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
    # Trial workers keep freed tensor memory mapped (sweep/allocator.py): glibc reads these at start.
    env = worker_env()
    if env:
        quiet["runtime_env"] = {"env_vars": env}
    if address:
        return {"address": address, **quiet}
    return {"address": "local", "num_cpus": num_cpus, "include_dashboard": dashboard,
            "dashboard_host": DASHBOARD_HOST, **quiet}


RAY_CONNECT_TIMEOUT_S = 30.0  # seconds a Ray cluster has to answer a join (a healthy one: about 1 s here)

# Joins the cluster and leaves; its last stdout line says why when it cannot.
_PROBE = """
import logging, sys
import ray
try:
    ray.init(address=sys.argv[1], logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
except Exception as exc:
    print(" ".join(f"{type(exc).__name__}: {exc}".split()))  # Ray's messages span lines: one line
    sys.exit(1)
ray.shutdown()
"""


def probe_ray(address: str, *, timeout_s: float | None = None) -> None:
    """Fail with one line unless ``address`` (host:port, ray://host:port, auto) is a Ray cluster that
    lets a driver join within ``timeout_s`` (default RAY_CONNECT_TIMEOUT_S).

    ray.init has no deadline of its own: where another service listens on the port, it retries for
    minutes (74 s even with Ray's GCS connect and wait settings turned down, measured here), and
    those settings would also shorten the real driver's patience with a busy head for the whole
    sweep. So a throwaway process joins first and is killed at the deadline; it costs about a second.
    """
    timeout_s = RAY_CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    env = {**os.environ}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    proc = subprocess.Popen([sys.executable, "-c", _PROBE, address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: nothing it started outlives it
        proc.communicate()
        raise ValueError(f"no Ray cluster answered at {address!r} within {timeout_s:g} s; check --address / "
                         "RAY_ADDRESS (a Ray head's GCS port, 6379 by default) and that the cluster is up") from None
    if proc.returncode != 0:
        lines = [ln for ln in stdout.splitlines() if ln.strip()] or [ln for ln in stderr.splitlines() if ln.strip()]
        reason = " ".join((lines[-1] if lines else f"exit code {proc.returncode}").split())[:300]
        raise ValueError(f"cannot connect to Ray at {address!r} ({reason}); check --address / RAY_ADDRESS "
                         "and that the cluster is up")


def connect_ray(address: str | None, *, verbose: bool, dashboard: bool, num_cpus: int | None) -> bool:
    """Join a cluster or start a local Ray; True when this call started or joined it (we shut it down)."""
    # Ray's anonymous usage report is of no use to a sweep (and nodes may have no internet);
    # a user who sets the variable keeps their choice.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False  # a notebook or test already connected: use that
    try:
        ray.init(**ray_init_kwargs(address, verbose=verbose, dashboard=dashboard, num_cpus=num_cpus))
    except ConnectionError as exc:
        raise ValueError(f"cannot connect to Ray at {address!r}: {' '.join(str(exc).split())}") from None
    return True
