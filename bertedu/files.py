"""One way to write files: atomically, with the mode the user's umask asks for.

Every file the course writes (caches, checkpoints, vocabularies, configs) goes through
:func:`atomic_write`: the content is written to a temporary file beside the target, then
renamed over it. A rename within one folder is atomic, so a crash, a Ctrl-C or a full disk
leaves the old file or the new one, never half a file.

The temporary file gets the mode an ordinary ``open(path, "w")`` would give (``0o666``
less the umask, usually ``0o644``), so a shared class folder stays readable by the class.
(``tempfile.mkstemp`` alone would make it ``0o600``: readable by its owner only.)

A write that was killed leaves its temporary file behind; its name carries the writer's
process id, and :func:`remove_stale_temporaries` deletes those whose writer is gone.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable

TMP_SUFFIX = ".bertedu-tmp"


def umask_mode(base: int = 0o666) -> int:
    """``base`` less the process's umask: the mode a plain ``open(..., "w")`` creates."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def temporary_name(path: Path) -> Path:
    """``.NAME.PID.RANDOM.bertedu-tmp`` beside ``path``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    The parent folder is created when missing. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = temporary_name(path)
    try:
        # Create it with the umask's mode before `write` opens it (it keeps the mode).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files in ``folder`` left by writes whose process has ended.

    Returns the files removed. Files of a writer that is still running are kept.
    """
    removed = []
    try:
        candidates = list(Path(folder).glob(f".*{TMP_SUFFIX}"))
    except OSError:
        return removed
    for tmp in candidates:
        parts = tmp.name[: -len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or _process_alive(int(parts[1])):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed
