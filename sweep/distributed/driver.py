"""`sweep run` and `sweep status`: the command line of the sweep.

``register(subparsers)`` adds both subcommands to the lead's ``sweep`` parser. Ray and torch are
imported inside the handlers only, so ``sweep --help`` stays fast. Bad input raises ValueError /
TypeError / FileNotFoundError with one line, before anything starts or anything in OUT is touched;
``sweep.cli.main`` prints it as ``sweep <cmd>: error: ...`` and exits 2.

Exit codes of ``sweep run``: 0 all trials done, 1 some trials failed after their retries (every
other result is written), 2 bad input (nothing started), 130 interrupted (Ctrl-C; results so far
are kept and the same command resumes).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from sweep.distributed.spec import MAX_SEED_COUNT, PRESETS, ExperimentSpec, load_preset, load_spec

HUGE_GRID = 2000  # trials; a bigger grid needs --yes (a typo in an axis can mean days of compute)


def _int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer >= ``low`` (and <= ``high``), else one line naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be an integer in [{low}, {high}], got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)
_seed_count = _int_at_least(1, MAX_SEED_COUNT)  # the cap of a spec's `seeds = N`


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` and ``status`` subcommands (each with ``handler=fn(args) -> int``)."""
    run = subparsers.add_parser(
        "run", help="run a sweep (the quick preset when given nothing)",
        description="Run every missing trial of an experiment grid on Ray Tune and write Parquet under OUT. "
                    "Trials already in OUT are skipped, so the same command resumes, and --seeds extends.",
    )
    run.add_argument("spec", nargs="?", metavar="SPEC",
                     help="experiment spec file (.toml, .yaml, .yml); default: the quick preset")
    run.add_argument("--preset", choices=PRESETS, default=None,
                     help="run a preset shipped with the package instead of a SPEC file; default when "
                          "neither is given: quick")
    run.add_argument("--out", metavar="PATH", default=None,
                     help="output folder or URI (local, NFS, s3://bucket/prefix); default: results/<experiment>")
    run.add_argument("--dataset", metavar="SPEC", default=None,
                     help="replace the spec's dataset: digits | cifar10 | parquet:DIR | imagefolder:DIR; "
                          "default: the spec's")
    run.add_argument("--seeds", type=_seed_count, metavar="N", default=None,
                     help=f"use seeds 0..N-1 (1 <= N <= {MAX_SEED_COUNT}) instead of the spec's; raising N extends a finished sweep; "
                          "default: the spec's seeds")
    run.add_argument("--retries", type=_nonneg_int, metavar="N", default=None,
                     help="retries per failing trial (>= 0); default: the spec's `retries`")
    run.add_argument("--max-concurrent", type=_nonneg_int, metavar="N", default=None,
                     help="trials at once across the cluster (>= 0, 0 = as many as resources allow); "
                          "default: the spec's")
    run.add_argument("--address", metavar="ADDR", default=None,
                     help="Ray cluster to join (host:port, ray://host:port or auto); default: $RAY_ADDRESS, "
                          "else a local Ray started for this run")
    run.add_argument("--num-cpus", type=_positive_int, metavar="N", default=None,
                     help="CPUs of the local Ray (>= 1; ignored with --address); default: all cores")
    run.add_argument("--dashboard", action="store_true",
                     help="start Ray's dashboard with the local Ray, bound to 127.0.0.1:8265; default: off")
    run.add_argument("--verbose", action="store_true", help="show Ray's and Tune's own logs and tables; default: off, one progress line")
    run.add_argument("--yes", action="store_true",
                     help=f"run grids of more than {HUGE_GRID:,} trials; default: refuse them with the trial count")
    run.set_defaults(handler=run_command)

    status = subparsers.add_parser(
        "status", help="done / missing / failed trials of OUT, per grid cell",
        description="Show, per grid cell (model, noise fraction, train size), how many seeds are done, "
                    "missing and failed. Read-only.",
    )
    status.add_argument("out", metavar="OUT", help="output folder or URI of a sweep")
    status.add_argument("spec", nargs="?", metavar="SPEC",
                        help="spec file whose grid to check against; default: the spec of OUT's latest run")
    status.add_argument("--preset", choices=PRESETS, default=None,
                        help="check against a preset's grid; default: the spec of OUT's latest run")
    status.add_argument("--seeds", type=_seed_count, metavar="N", default=None,
                        help=f"check seeds 0..N-1 (1 <= N <= {MAX_SEED_COUNT}); default: the spec's seeds")
    status.set_defaults(handler=status_command)


# ---- run --------------------------------------------------------------------------------------
def resolve_spec(args: argparse.Namespace) -> ExperimentSpec:
    if args.spec and args.preset:
        raise ValueError(f"give a SPEC file or --preset, not both (got {args.spec!r} and --preset {args.preset})")
    spec = load_spec(args.spec) if args.spec else load_preset(args.preset or "quick")
    if not getattr(args, "yes", True):  # `sweep run` without --yes: count first, build the trials after
        cells = spec.num_trials // len(spec.seeds)
        check_grid_size(cells * (args.seeds or len(spec.seeds)))
    spec = spec.with_overrides(dataset=getattr(args, "dataset", None), seeds=args.seeds,
                               max_concurrent=getattr(args, "max_concurrent", None))
    if getattr(args, "retries", None) is not None:
        from dataclasses import replace

        spec = replace(spec, retries=args.retries)
    return spec


def check_grid_size(num_trials: int) -> None:
    """Refuse a grid of more than HUGE_GRID trials (the caller asks only when --yes is not given)."""
    if num_trials > HUGE_GRID:
        raise ValueError(f"this grid has {num_trials:,} trials (more than {HUGE_GRID:,}); check the spec's "
                         "axes, then pass --yes to run it")


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


def check_grid_fits(spec: ExperimentSpec, dataset: Any) -> None:
    """Refuse a grid that cannot run on ``dataset`` (every such trial would fail on a worker).

    Uses the engine's own checks (sweep.engine.subsets, sweep.engine.noise: numpy only, no torch import).
    """
    from sweep.engine.noise import check_matrix, check_pairs
    from sweep.engine.subsets import resolve_train_size

    counts: dict[int, int | float] = {}
    for size in spec.train_sizes:
        try:
            count = resolve_train_size(size, dataset.num_train)
        except ValueError as exc:
            raise ValueError(f"train_sizes of {spec.dataset}: {exc}") from None
        # Two spellings of one size (0.4 and 538 of 1,346) are two trial ids for the same trial:
        # both would run, and the report would find the trial twice.
        if count in counts:
            raise ValueError(f"train_sizes of {spec.dataset}: {counts[count]!r} and {size!r} both select "
                             f"{count} of the {dataset.num_train} train examples; keep one of them")
        counts[count] = size
    if spec.noise_mode == "pairs" and spec.noise_pairs is not None:
        try:
            check_pairs(spec.noise_pairs, dataset.classes)
        except ValueError as exc:
            raise ValueError(f"noise_pairs of {spec.dataset}: {exc}") from None
    if spec.noise_mode == "matrix" and spec.noise_matrix is not None:
        try:
            check_matrix(spec.noise_matrix, dataset.num_classes)
        except ValueError as exc:
            raise ValueError(f"noise_matrix for {spec.dataset} ({dataset.num_classes} classes): {exc}") from None


def _first_missing(path: str) -> str | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    missing = None
    while not os.path.exists(path):
        missing, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_if_empty(root: str, created: str) -> None:
    """Remove the folders from ``root`` up to ``created`` that this run made and left empty."""
    path = root
    while True:
        try:
            os.rmdir(path)
        except OSError:
            return
        if path == created:
            return
        path = os.path.dirname(path)


def run_command(args: argparse.Namespace) -> int:
    from sweep.distributed.store import (check_writable, open_output, quarantine, remove_stale_temp_files,
                               remove_uncommitted, scan_done)
    from sweep.engine.malloc_tuning import enabled as allocator_enabled
    from sweep.distributed.lock import OutputLock, check_experiment, check_sizes_against_out, record_experiment

    allocator_enabled()  # a bad SWEEP_KEEP_FREED_MEMORY stops here, before anything is printed or started
    spec = resolve_spec(args)  # a grid over HUGE_GRID without --yes stops here, before it is built
    # `--out ""` is a mistake to report, not a request for the default
    out = open_output(os.path.join("results", spec.name) if args.out is None else args.out)
    check_experiment(out, spec)
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address == "local":
        address = None  # ray.init's "local" starts a Ray for this run: the same as no address
    num_train = None
    if address:
        check_reachable(address)
        probe_ray(address)
    else:
        # A local run sees the same files as its workers: check the dataset here, once, so a bad
        # dataset is one line and exit 2 instead of N failed trials; this also fills the disk cache
        # that the workers then read instead of each decoding the source.
        from sweep.engine.datasets import load_dataset

        dataset = load_dataset(spec.dataset, data_dir=spec.data_dir)
        check_grid_fits(spec, dataset)
        num_train = dataset.num_train
    created = _first_missing(out.root) if out.is_local else None
    lock = OutputLock(out)
    started_ray = False
    try:
        if address:  # join before OUT is touched: a cluster that does not answer costs nothing in OUT
            started_ray = connect_ray(address, verbose=args.verbose, dashboard=args.dashboard,
                                      num_cpus=args.num_cpus)
        lock.acquire()
        check_writable(out)
        scan = scan_done(out)
        check_sizes_against_out(out, spec, scan.done, num_train=num_train)
        todo = [c for c in spec.trials() if c.trial_id not in scan.done]
        requested, note = spec, None  # OUT records the spec as asked for, not as fitted to this machine
        if todo:
            if not address:
                started_ray = connect_ray(None, verbose=args.verbose, dashboard=args.dashboard,
                                          num_cpus=args.num_cpus)
            spec, note = _fit_to_ray(spec, local=not address)
            # Built again from the fitted spec: capped CPUs change the trials' torch threads
            # (not their ids), so the trials must carry them.
            todo = [c for c in spec.trials() if c.trial_id not in scan.done]
        # Every check passed: from here on OUT changes.
        for path in scan.corrupt:
            print(f"sweep run: {path} does not open as Parquet; its trial will be rerun", file=sys.stderr)
        if scan.corrupt:
            quarantine(out, scan.corrupt)
        remove_stale_temp_files(out)
        if lock.held:  # no trial of OUT runs now: an interrupted trial's files go, it reruns
            remove_uncommitted(out)
        skipped = spec.num_trials - len(todo)
        print(f"sweep run: {spec.name}: {spec.num_trials} trials, {skipped} already done, {len(todo)} to run "
              f"-> {out.uri}", file=sys.stderr)
        if not todo:
            record_experiment(out, requested)
            print("sweep run: nothing to do", file=sys.stderr)
            return 0
        if note:
            print(f"sweep run: note: {note}", file=sys.stderr)
        record_experiment(out, requested)
        return _run_and_report(spec, out, todo, skipped=skipped, local=not address, verbose=args.verbose)
    except BaseException:
        lock.release()
        if created:
            _remove_if_empty(out.root, created)  # we created OUT only to lock it: no trace of a failed start
        raise
    finally:
        lock.release()
        if started_ray:
            import ray

            ray.shutdown()


def _fit_to_ray(spec: ExperimentSpec, *, local: bool) -> tuple[ExperimentSpec, str | None]:
    """The spec as it will run on the connected Ray: on a Ray started here, fitted to this machine
    (a ``device = "cuda"`` spec on a machine without GPUs is refused: every trial would fail)."""
    import ray

    from sweep.distributed.tune_layer import fit_to_local_cluster

    if not local:
        return spec, None  # a cluster may have no GPU node yet: the autoscaler adds them on demand
    return fit_to_local_cluster(spec, ray.cluster_resources())


def _run_and_report(spec: ExperimentSpec, out: Any, todo: list, *, skipped: int, local: bool,
                    verbose: bool) -> int:
    import ray

    from sweep.distributed.progress import format_seconds
    from sweep.distributed.tune_layer import concurrent_slots, run_tune

    resources = ray.cluster_resources()
    slots = concurrent_slots(spec, resources)
    print(f"sweep run: Ray {'local' if local else 'cluster'} with {resources.get('CPU', 0):g} CPUs, "
          f"{resources.get('GPU', 0):g} GPUs; {spec.cpus:g} CPU + {spec.gpus:g} GPU per trial, "
          f"{slots or 'waiting for'} at a time", file=sys.stderr)
    started = time.monotonic()
    outcome = run_tune(spec, out, todo, skipped=skipped, verbose=verbose, progress=True)
    done = outcome.skipped + outcome.succeeded
    print(f"sweep run: {done}/{outcome.total} trials done ({outcome.succeeded} now, {outcome.skipped} before) "
          f"in {format_seconds(time.monotonic() - started)} -> {out.uri}", file=sys.stderr)
    if outcome.failed:
        print(f"sweep run: {len(outcome.failed)} trial(s) failed after {spec.retries} retries:", file=sys.stderr)
        for trial_id, info in sorted(outcome.failed.items(), key=lambda kv: kv[1]["key"]):
            print(f"  {trial_id}  {info['key']}: {info['error']}", file=sys.stderr)
        print("sweep run: the other results are written; run the same command again to retry only these",
              file=sys.stderr)
    if outcome.unfinished:
        print(f"sweep run: stopped with {len(outcome.unfinished)} trial(s) not run (interrupted); "
              "run the same command again to resume", file=sys.stderr)
    if outcome.failed:
        return 1
    return 130 if outcome.unfinished else 0


# ---- status -----------------------------------------------------------------------------------
def status_command(args: argparse.Namespace) -> int:
    from sweep.distributed.store import open_output, read_failed, scan_done
    from sweep.distributed.lock import check_experiment, read_experiment, stored_spec

    out = open_output(args.out)
    if args.spec or args.preset:
        args.dataset = args.max_concurrent = None
        spec = resolve_spec(args)
        if read_experiment(out) is not None:  # as `sweep run` would: another experiment's grid says nothing here
            check_experiment(out, spec, advice="leave out SPEC to check against OUT's own spec")
    else:
        spec = stored_spec(out)
        if spec is None:
            raise FileNotFoundError(f"{out.uri} holds no sweep (no experiment.json); give a SPEC to check against")
        spec = spec.with_overrides(seeds=args.seeds)
    scan = scan_done(out)
    failed = read_failed(out)
    print(format_status(spec, out.uri, scan.done, failed, scan.corrupt))
    return 0


def format_status(spec: ExperimentSpec, uri: str, done: frozenset[str], failed: dict[str, dict],
                  corrupt: tuple[str, ...] = ()) -> str:
    """The status table: one row per grid cell, counts of seeds done / missing / failed."""
    rows, totals = [], [0, 0, 0]
    grid_ids = set()
    for model, noise, size in spec.cells():
        ids = [spec.trial_config(model, noise, size, seed).trial_id for seed in spec.seeds]
        grid_ids.update(ids)
        n_done = sum(i in done for i in ids)
        n_failed = sum(i not in done and i in failed for i in ids)
        n_missing = len(ids) - n_done - n_failed
        for i, n in enumerate((n_done, n_missing, n_failed)):
            totals[i] += n
        rows.append((model, f"{noise:.2f}", str(size),
                     f"{n_done}/{len(ids)}", str(n_missing), str(n_failed)))
    header = ("model", "noise", "train_size", "done", "missing", "failed")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [f"{spec.name} at {uri}: {spec.num_trials} trials in the grid: {totals[0]} done, "
             f"{totals[1]} missing, {totals[2]} failed", "", fmt.format(*header)]
    lines += [fmt.format(*r) for r in rows]
    outside = len(done - grid_ids)
    if outside:
        lines.append(f"\n{outside} finished trial(s) in OUT are outside this grid (other seeds or axis values)")
    stuck = {i: r for i, r in failed.items() if i in grid_ids and i not in done}
    if stuck:
        lines.append("\nfailed trials (a new `sweep run` retries them):")
        for trial_id, record in sorted(stuck.items()):
            key = "/".join(f"{k}={v}" for k, v in (record.get("key") or {}).items())
            lines.append(f"  {trial_id}  {key}: {record.get('error', '?')} (attempt {record.get('attempt', '?')})")
    if corrupt:
        lines.append("\nfiles that do not open as Parquet (their trials count as missing):")
        lines += [f"  {path}" for path in corrupt]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m sweep.distributed.driver run|status ...``: the two commands without the rest of ``sweep``."""
    parser = argparse.ArgumentParser(prog="sweep")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"sweep {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
