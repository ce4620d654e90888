"""Content-addressed artifact store: every blob is kept once, under its sha256.

A local folder by default; any fsspec URL otherwise. Reads always verify the hash, so a
file changed on disk behind the registry's back is refused instead of being used.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import IntegrityError

_CHUNK = 1 << 20


def sha256_of_bytes(data):
    return hashlib.sha256(data).hexdigest()


def _sha256_of_file(path):
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class ArtifactStore:
    def __init__(self, root):
        self.root = root
        self._local = "://" not in root
        self._fs = None

    def _key(self, sha256):
        return f"sha256/{sha256[:2]}/{sha256[2:]}"

    def _filesystem(self):
        if self._fs is None:
            import fsspec

            self._fs, self._base = fsspec.core.url_to_fs(self.root)
        return self._fs

    def location(self, sha256):
        """Where the blob lives: a local path, or a URL under the store's root."""
        if self._local:
            return str(Path(self.root, self._key(sha256)))
        return f"{self.root.rstrip('/')}/{self._key(sha256)}"

    def put_bytes(self, data):
        sha256 = sha256_of_bytes(data)
        if self._local:
            self._write_local(sha256, lambda handle: handle.write(data))
        else:
            self._upload(sha256, lambda fs, target: fs.pipe_file(target, data))
        return sha256, len(data)

    def put_file(self, path):
        sha256, size = _sha256_of_file(path)
        if self._local:
            self._write_local(sha256, lambda handle: _copy_into(path, handle))
        else:
            self._upload(sha256, lambda fs, target: fs.put_file(str(path), target))
        return sha256, size

    def _remote_path(self, sha256):
        self._filesystem()
        return f"{self._base.rstrip('/')}/{self._key(sha256)}"

    def _upload(self, sha256, upload):
        fs, target = self._filesystem(), self._remote_path(sha256)
        if not fs.exists(target):
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            upload(fs, target)

    def _write_local(self, sha256, write):
        target = Path(self.location(sha256))
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target, then rename: readers never see a half-written blob.
        handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".tmp-", delete=False)
        try:
            with handle:
                write(handle)
            os.replace(handle.name, target)
        except BaseException:
            os.unlink(handle.name)
            raise

    def get_bytes(self, sha256):
        """The blob's bytes, after checking they still hash to ``sha256``."""
        location = self.location(sha256)
        try:
            if self._local:
                data = Path(location).read_bytes()
            else:
                data = self._filesystem().cat_file(self._remote_path(sha256))
        except FileNotFoundError:
            raise IntegrityError(f"artifact {sha256[:12]} is missing from the store at {location}") from None
        if sha256_of_bytes(data) != sha256:
            raise IntegrityError(
                f"artifact {sha256[:12]} at {location} does not match its recorded sha256: "
                "it was changed or corrupted after it was stored; refusing to use it"
            )
        return data

    def copy_to(self, sha256, destination):
        """Write the verified blob to ``destination`` (a local path)."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(self.get_bytes(sha256))
        return destination


def _copy_into(path, handle):
    with open(path, "rb") as source:
        shutil.copyfileobj(source, handle, _CHUNK)
