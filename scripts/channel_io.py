"""Writing conda channels so that an interruption (kill -9, full disk, crash) never loses or
corrupts a package: shared by mirror_channel.py and build_variant.py's publish step.

The channel directory is never moved or deleted. Package files arrive under a temporary
name and are renamed once their sha256 matches the source; the index is computed in a
staging directory of hard links, in a subprocess (py-rattler can crash while its
interpreter exits, after a successful index), checked against the package files, and each
subdir's repodata.json is then renamed over the old one. A reader sees the old or the new
repodata.json, and every package either lists is complete. What an interrupted run left
(partial files, staging directories, the ``<channel>.old-*`` directories of the earlier
rename-based publish) is recovered or removed by the next run.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Iterable, List, Optional

SUBDIRS = ("noarch", "linux-64")
PACKAGE_SUFFIXES = (".conda", ".tar.bz2")
PARTIAL_SUFFIX = ".partial"  # package copies in flight: "<name>.<random>.partial"
STAGING_INFIX = "-staging-"  # index staging: "<parent>/.<channel name>-staging-<random>"


class ChannelError(RuntimeError):
    """A channel cannot be written or does not verify."""


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomically(dest: str, fill, verify=None) -> None:
    """Create ``dest`` via a temporary in its directory: ``fill(file)`` writes it, then it is
    fsync'ed, checked by ``verify(temporary_path)`` (which raises to abort: nothing is
    renamed), given the umask's mode and renamed over ``dest``."""
    directory = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=PARTIAL_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def copy_verified(src: str, dest: str, sha256: Optional[str] = None, size: Optional[int] = None) -> None:
    """Copy ``src`` to ``dest`` atomically; the copy must have ``sha256``/``size`` (by
    default those of ``src``), else nothing is renamed and ChannelError is raised."""
    expected_sha = sha256 or sha256_of(src)
    expected_size = os.path.getsize(src) if size is None else size

    def fill(f) -> None:
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 20)

    def verify(tmp: str) -> None:
        got_size, got_sha = os.path.getsize(tmp), sha256_of(tmp)
        if got_size != expected_size or got_sha != expected_sha:
            raise ChannelError(
                f"copy of {src} does not verify: size {got_size} sha256 {got_sha}, expected size "
                f"{expected_size} sha256 {expected_sha} (the source changed, or its repodata is stale)"
            )

    write_file_atomically(dest, fill, verify)


def is_package(name: str) -> bool:
    return name.endswith(PACKAGE_SUFFIXES) and not name.startswith(".")


def packages_in(channel: str) -> Dict[str, List[str]]:
    """Package file names per subdir (temporaries excluded)."""
    out = {}
    for sub in SUBDIRS:
        d = os.path.join(channel, sub)
        out[sub] = sorted(n for n in os.listdir(d) if is_package(n)) if os.path.isdir(d) else []
    return out


def recover(channel: str) -> List[str]:
    """Undo what interrupted runs left around ``channel``; returns what was done.

    - ``<channel>.old-*`` (the earlier publish renamed the channel there before moving the
      new one in): restored when the channel is missing, else its packages the channel lacks
      are copied back, then it is removed;
    - staging directories of index runs are removed;
    - partial package copies and repodata temporaries inside the channel are removed.
    """
    channel = os.path.abspath(channel)
    parent, name = os.path.split(channel)
    done: List[str] = []
    if not os.path.isdir(parent):
        return done
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if entry.startswith(name + ".old-") and os.path.isdir(path):
            if not os.path.exists(channel):
                os.rename(path, channel)
                done.append(f"restored {channel} from {path}")
                continue
            for sub, names in packages_in(path).items():
                os.makedirs(os.path.join(channel, sub), exist_ok=True)
                for n in names:
                    dest = os.path.join(channel, sub, n)
                    if not os.path.exists(dest):
                        copy_verified(os.path.join(path, sub, n), dest)
                        done.append(f"recovered {sub}/{n} from {path}")
            shutil.rmtree(path)
            done.append(f"removed {path}")
        elif entry.startswith("." + name + STAGING_INFIX) or _is_old_staging_copy(path):
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}")
    for sub in SUBDIRS:
        d = os.path.join(channel, sub)
        if not os.path.isdir(d):
            continue
        for n in os.listdir(d):
            if n.startswith(".") and n.endswith(PARTIAL_SUFFIX):
                os.unlink(os.path.join(d, n))
                done.append(f"removed {sub}/{n}")
    return done


def _is_old_staging_copy(path: str) -> bool:
    """The earlier publish staged whole channel copies in "<parent>/.channel-<8 random>"."""
    entry = os.path.basename(path)
    if not (entry.startswith(".channel-") and len(entry) == len(".channel-") + 8 and os.path.isdir(path)):
        return False
    return set(os.listdir(path)) <= set(SUBDIRS)


@contextlib.contextmanager
def channel_lock(channel: str):
    """One writer per channel: an exclusive lock on "<channel>/.lock" (released by the
    kernel when the holder dies, so a killed run never blocks the next). A missing channel
    is created empty; recover() then merges what a ``.old-*`` directory holds into it."""
    os.makedirs(channel, exist_ok=True)
    with open(os.path.join(channel, ".lock"), "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


_INDEX_CODE = """
import asyncio, sys
import rattler.index
result = rattler.index.index_fs(sys.argv[1], write_zst=False, write_shards=False, force=True)
if asyncio.iscoroutine(result):
    asyncio.run(result)
print("indexed", flush=True)
"""


def _run_indexer(directory: str, python: str) -> str:
    """py-rattler's index_fs on ``directory`` in a child process. Its exit status is not
    trusted either way: the caller checks the repodata it wrote."""
    proc = subprocess.run([python, "-c", _INDEX_CODE, directory], capture_output=True, text=True)
    return f"exit {proc.returncode}; " + (proc.stdout + proc.stderr).strip()[-500:]


def verify_repodata(channel: str) -> Dict[str, int]:
    """Check that every subdir's repodata.json lists exactly its package files, with their
    sizes and sha256. Returns the number of packages per subdir."""
    counts = {}
    for sub, names in packages_in(channel).items():
        path = os.path.join(channel, sub, "repodata.json")
        try:
            with open(path) as f:
                repodata = json.load(f)
        except (OSError, ValueError) as e:
            raise ChannelError(f"{path} cannot be read: {e}") from e
        records = dict(repodata.get("packages", {}))
        records.update(repodata.get("packages.conda", {}))
        if sorted(records) != names:
            raise ChannelError(
                f"{path} lists {sorted(records)} but {os.path.join(channel, sub)} holds {names}"
            )
        for n in names:
            file = os.path.join(channel, sub, n)
            rec = records[n]
            if rec.get("size") != os.path.getsize(file) or rec.get("sha256") != sha256_of(file):
                raise ChannelError(f"{path}: the record of {n} does not match the file (size/sha256)")
        counts[sub] = len(names)
    return counts


def _link_or_copy(src: str, dest: str) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def index(channel: str, python: Optional[str] = None, attempts: int = 3) -> Dict[str, int]:
    """(Re)index ``channel`` without ever exposing a partial repodata.json.

    The packages are hard-linked into a staging directory next to the channel, indexed
    there, verified, and each repodata.json is renamed into the channel.
    """
    channel = os.path.abspath(channel)
    parent, name = os.path.split(channel)
    for sub in SUBDIRS:
        os.makedirs(os.path.join(channel, sub), exist_ok=True)
    last = ""
    for _ in range(attempts):
        staging = tempfile.mkdtemp(prefix="." + name + STAGING_INFIX, dir=parent)
        try:
            for sub, names in packages_in(channel).items():
                os.makedirs(os.path.join(staging, sub))
                for n in names:
                    _link_or_copy(os.path.join(channel, sub, n), os.path.join(staging, sub, n))
            last = _run_indexer(staging, python or sys.executable)
            try:
                counts = verify_repodata(staging)
            except ChannelError as e:
                last += f"; {e}"
                continue
            for sub in SUBDIRS:
                src = os.path.join(staging, sub, "repodata.json")
                write_file_atomically(
                    os.path.join(channel, sub, "repodata.json"), lambda f, src=src: f.write(open(src, "rb").read())
                )
            return counts
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise ChannelError(f"indexing {channel} failed {attempts} times; last: {last}")


def source_records(package_path: str) -> Optional[dict]:
    """The record of a package in its own directory's repodata.json (a channel subdir), if any."""
    repodata = os.path.join(os.path.dirname(package_path), "repodata.json")
    try:
        with open(repodata) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    name = os.path.basename(package_path)
    return data.get("packages", {}).get(name) or data.get("packages.conda", {}).get(name)


def needs_copy(src: str, dest: str, expected_sha: str, expected_size: int) -> bool:
    """Whether ``dest`` is missing or differs from what the source promises."""
    if not os.path.isfile(dest):
        return True
    return os.path.getsize(dest) != expected_size or sha256_of(dest) != expected_sha


def expected_digest(src: str) -> tuple:
    """(sha256, size) the source's repodata promises for ``src``, else the file's own; a
    source file that contradicts its repodata is an error (a truncated source)."""
    actual_size = os.path.getsize(src)
    actual_sha = sha256_of(src)
    rec = source_records(src)
    if rec and (rec.get("sha256"), rec.get("size")) != (actual_sha, actual_size) and rec.get("sha256"):
        raise ChannelError(
            f"{src} does not match its channel's repodata.json (size {actual_size} vs {rec.get('size')}, "
            f"sha256 {actual_sha} vs {rec.get('sha256')}): the source is damaged; not mirrored"
        )
    return actual_sha, actual_size


def add_packages(items: Iterable[tuple]) -> int:
    """Copy (src, dest, (sha256, size)) items whose dest is missing or differs; returns how
    many were copied."""
    count = 0
    for src, dest, (sha, size) in items:
        if needs_copy(src, dest, sha, size):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            copy_verified(src, dest, sha, size)
            count += 1
    return count
