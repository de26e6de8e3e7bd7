"""Guards on an output folder: which experiment it holds, and which driver owns it right now.

- ``OUT/experiment.json`` records the experiment the folder belongs to. It is written on the first
  run; later runs must agree on the experiment's identity (name, dataset, noise mode, recipe), while
  the axes may grow (more seeds, sizes, noise levels), so `--seeds 20` extends a 5-seed sweep. The
  file also keeps the latest run's full spec, which `sweep status OUT` uses as the grid.
- ``OUT/.lock`` makes one driver at a time the owner of a local or NFS output folder: created with
  O_CREAT|O_EXCL, holding pid and host. A lock whose pid is dead on this host is stale and taken
  over, as is an empty one older than 10 s; a live one makes the second driver stop with a message
  naming the owner. Object stores
  (s3://) have no exclusive create, so there the lock is skipped with a warning; writes stay safe
  (whole objects, named by trial_id) but two drivers may run the same trial twice.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from typing import Any

from sweep.results import Output, OutputNotWritableError, write_bytes_atomic
from sweep.spec import ExperimentSpec, spec_from_dict

EXPERIMENT_FILE = "experiment.json"
LOCK_FILE = ".lock"


class OutputLockedError(ValueError):
    """Another live driver owns this output folder."""


def read_experiment(out: Output) -> dict[str, Any] | None:
    """The parsed experiment.json, or None when OUT holds none yet."""
    try:
        with out.fs.open_input_stream(out.path(EXPERIMENT_FILE)) as fh:
            raw = fh.read()
    except (FileNotFoundError, OSError):
        return None
    try:
        record = json.loads(raw)
        if not isinstance(record, dict) or "identity" not in record:
            raise ValueError("missing 'identity'")
        return record
    except ValueError as exc:
        raise ValueError(f"{out.uri}/{EXPERIMENT_FILE} is not a valid experiment record ({exc}); "
                         "it was not written by `sweep run`") from None


def stored_spec(out: Output) -> ExperimentSpec | None:
    """The spec of the latest run into OUT, or None."""
    record = read_experiment(out)
    if record is None:
        return None
    return spec_from_dict(record["spec"], source=f"{out.uri}/{EXPERIMENT_FILE}")


def check_experiment(out: Output, spec: ExperimentSpec) -> None:
    """Refuse (ValueError, nothing touched) when OUT already holds a different experiment."""
    record = read_experiment(out)
    if record is None:
        # Results without a record: not ours to mix into.
        for directory in ("trials", "confusion"):
            try:
                info = out.fs.get_file_info(out.path(directory))
            except OSError:
                continue
            if info.type != info.type.NotFound:
                raise ValueError(f"{out.uri} holds a {directory}/ folder but no {EXPERIMENT_FILE}; "
                                 "use an empty or new --out")
        return
    theirs, ours = record["identity"], spec.identity()
    if theirs != ours:
        diffs = [f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here"
                 for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
        raise ValueError(f"{out.uri} holds results of a different experiment ({'; '.join(diffs)}); "
                         "use another --out")


def record_experiment(out: Output, spec: ExperimentSpec) -> None:
    """Write experiment.json: identity and creation time kept from the first run, spec from this one."""
    record = read_experiment(out) or {
        "identity": spec.identity(),
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    record["spec"] = spec.to_dict()
    record["updated_at"] = datetime.now(timezone.utc).isoformat()
    write_bytes_atomic(out, EXPERIMENT_FILE, json.dumps(record, indent=1, sort_keys=True).encode())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class OutputLock:
    """Exclusive ownership of OUT for one driver; a context manager. See the module docstring."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.path = out.path(LOCK_FILE)
        self.held = False

    def acquire(self) -> "OutputLock":
        if not self.out.is_local:
            print(f"sweep: warning: {self.out.uri} is not a local/NFS path; no lock taken, "
                  "do not start two drivers on it at once", file=sys.stderr)
            return self
        root = self.out.root
        if os.path.exists(root) and not os.path.isdir(root):
            raise OutputNotWritableError(f"output location {root} is a file, not a folder; choose another --out")
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            raise OutputNotWritableError(f"cannot create the output folder {root}: {exc.strerror or exc}; "
                                         "choose a writable --out (nothing was started)") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started_at": datetime.now(timezone.utc).isoformat()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as exc:
                if not isinstance(exc, FileExistsError):
                    raise OutputNotWritableError(f"cannot write to {root}: {exc.strerror or exc}; free space or "
                                                 "choose a writable --out (nothing was started)") from None
                owner = self._owner()
                if self._stale(owner):
                    try:
                        os.unlink(self.path)  # dead driver on this host: take over
                    except FileNotFoundError:
                        pass
                    continue
                who = (f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('started_at')}"
                       if owner else "another process (lock is being written)")
                raise OutputLockedError(
                    f"{self.out.uri} is in use by another sweep driver ({who}); wait for it to finish, "
                    f"or delete {self.path} if that driver is gone") from None
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(me, fh)
            except OSError as exc:  # e.g. a full disk: the name was created, its bytes were not
                os.unlink(self.path)
                raise OutputNotWritableError(f"cannot write to {root}: {exc.strerror or exc}; free space or "
                                             "choose a writable --out (nothing was started)") from None
            self.held = True
            return self
        raise OutputLockedError(f"could not take the lock {self.path}; another driver keeps taking it")

    def _owner(self) -> dict[str, Any] | None:
        try:
            with open(self.path) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _stale(self, owner: dict[str, Any] | None) -> bool:
        if owner is None:  # unreadable: a driver died between creating and writing it, or one is writing now
            try:
                return time.time() - os.path.getmtime(self.path) > 10.0
            except FileNotFoundError:
                return True
        pid = owner.get("pid")
        return owner.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as exc:  # OUT turned read-only mid-run: the results stand; say what is left
                print(f"sweep: warning: could not remove the lock {self.path} ({exc.strerror}); "
                      "delete it once OUT is writable again", file=sys.stderr)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
