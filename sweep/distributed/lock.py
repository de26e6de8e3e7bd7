"""``OUT/.lock``: which driver owns an output folder right now.

The lock makes one driver at a time the owner of a local or NFS output folder: created with
O_CREAT|O_EXCL, holding pid and host. A lock whose pid is dead on this host is stale and taken
over, as is an empty one older than 10 s; a live one makes the second driver stop with a message
naming the owner. A driver decides about an existing lock, and removes a stale one, only while it
holds an exclusive ``flock`` on that lock file, so of two drivers that find the same stale lock
one takes it over and the other then finds the first one's fresh lock. Object stores (s3://) have
no exclusive create, so there the lock is skipped with a warning; writes stay safe (whole objects,
named by trial_id) but two drivers may run the same trial twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from datetime import datetime, timezone
from typing import Any

from sweep.distributed.store import Output, OutputNotWritableError

LOCK_FILE = ".lock"


class OutputLockedError(ValueError):
    """Another live driver owns this output folder."""


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
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as exc:
                if not isinstance(exc, FileExistsError):
                    raise OutputNotWritableError(f"cannot write to {root}: {exc.strerror or exc}; free space or "
                                                 "choose a writable --out (nothing was started)") from None
                removed, owner = self._remove_if_stale()
                if removed:
                    continue  # a dead driver's lock (or one gone meanwhile): create ours
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

    def _remove_if_stale(self) -> tuple[bool, dict[str, Any] | None]:
        """(True, None) when the lock at self.path is gone or was stale and removed now; else
        (False, its live owner). Decided under an exclusive flock on that lock file, which only
        drivers deciding about it take (never its owner): the second of two drivers that found the
        same stale lock sees, once it has the flock, that the name no longer points at that file,
        and looks again (finding the first one's fresh lock), instead of removing the fresh lock."""
        try:
            fd = os.open(self.path, os.O_RDWR)  # NFS emulates flock with POSIX locks: needs write access
        except FileNotFoundError:
            return True, None
        except OSError:  # another user's lock, or a read-only OUT: still say who owns it
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return True, None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # held for microseconds by another deciding driver, if any
            except OSError:
                pass  # no flock here (a read-only fd on NFS): decide as before, unguarded
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))  # our fd pins the inode number
            except FileNotFoundError:
                same = False
            if not same:
                return True, None  # taken over or released while we waited: look again
            owner = self._owner()
            if not self._stale(owner):
                return False, owner
            try:
                os.unlink(self.path)  # a dead driver's lock: take over
            except OSError as exc:
                raise OutputNotWritableError(f"cannot take over the stale lock {self.path}: "
                                             f"{exc.strerror or exc}; choose a writable --out "
                                             "(nothing was started)") from None
            return True, None
        finally:
            os.close(fd)  # releases the flock

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
