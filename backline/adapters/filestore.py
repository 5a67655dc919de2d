"""Local-filesystem file store (the default): ``<data_dir>/files/<key>``.

Writes are atomic: the application writes a staging file (under ``<root>/.staging``, on
the same filesystem), ``commit`` fsyncs it, renames it over the key's path and fsyncs the
directory, so a crash leaves either the old file, no file, or the whole new one. Keys are
checked so no key can leave the root. An S3-compatible store implements the same
:class:`~backline.application.file_ports.FileStore` port (staging stays on local disk;
``commit`` becomes a multipart upload, ``local_path`` returns None).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalFileStore:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.staging = self.root / ".staging"
        self.staging.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY_RE.match(key) or ".." in key.split("/"):
            raise ValueError(f"invalid file store key {key!r}")
        return self.root / key

    def new_staging_path(self, hint: str = "") -> Path:
        safe = re.sub(r"[^A-Za-z0-9_-]", "", hint)[:32]
        return self.staging / f"{uuid.uuid4().hex}{'-' + safe if safe else ''}.tmp"

    def commit(self, staging_path: Path, key: str, *, replace: bool = True) -> None:
        target = self._path(key)
        with open(staging_path, "rb+") as fh:
            os.fsync(fh.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        if not replace and target.exists():
            staging_path.unlink(missing_ok=True)
            return
        os.replace(staging_path, target)
        fsync_dir(target.parent)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def list_children(self, prefix: str) -> list[str]:
        path = self._path(prefix.rstrip("/"))
        if not path.is_dir():
            return []
        return sorted(entry.name for entry in path.iterdir())

    def clean_staging(self, older_than_seconds: float) -> int:
        """Remove abandoned staging files (a killed request leaves one); returns the count."""
        import time

        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in self.staging.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except OSError:
                continue
        return removed
