"""Kill tests of the channel tools (issue 15): mirror_channel.py and build_variant.py's
publish step are SIGKILLed at random points, rerun, and the channel must then index (its
repodata lists every package with the file's size and sha256, and py-rattler reads it) and
every package must extract with its payload intact. Also the leftovers of the earlier
rename-based publish are recovered."""
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
sys.path.insert(0, SCRIPTS)
import channel_io  # noqa: E402

KILLS = int(os.environ.get("D2_KILL_ITERATIONS", "2"))  # per tool; raise it for a longer campaign


def make_package(directory: str, name: str, version: str, size: int, seed: int, subdir: str = "linux-64") -> str:
    """A .tar.bz2 package with a random payload of `size` bytes; returns its path."""
    payload = random.Random(seed).randbytes(size)
    index = {"name": name, "version": version, "build": "h0_0", "build_number": 0, "depends": [],
             "subdir": subdir, "license": "test", "timestamp": 1700000000000}
    if subdir == "noarch":
        index["noarch"] = "generic"
    os.makedirs(os.path.join(directory, subdir), exist_ok=True)
    path = os.path.join(directory, subdir, f"{name}-{version}-h0_0.tar.bz2")
    with tarfile.open(path, "w:bz2") as tar:
        files = {"info/index.json": json.dumps(index).encode(),
                 "info/paths.json": json.dumps({"paths": [], "paths_version": 1}).encode(),
                 f"share/{name}/payload.bin": payload}
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return path


def _payload_sha(name: str, size: int, seed: int) -> str:
    return hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()


def check_channel(channel: str, expected: dict) -> None:
    """expected: file name -> (name, size, seed). Every one is listed, verifies and extracts."""
    counts = channel_io.verify_repodata(channel)
    files = {n for names in channel_io.packages_in(channel).values() for n in names}
    assert files == set(expected), (sorted(files), sorted(expected))
    assert sum(counts.values()) == len(expected)
    import rattler

    for sub in channel_io.SUBDIRS:
        records = rattler.RepoData.from_path(os.path.join(channel, sub, "repodata.json")).into_repo_data(
            rattler.Channel("file://" + channel)
        )
        assert len(records) == len(channel_io.packages_in(channel)[sub])
    for sub, names in channel_io.packages_in(channel).items():
        for n in names:
            name, size, seed = expected[n]
            with tarfile.open(os.path.join(channel, sub, n), "r:bz2") as tar:
                data = tar.extractfile(f"share/{name}/payload.bin").read()
            assert hashlib.sha256(data).hexdigest() == _payload_sha(name, size, seed), n
    leftovers = [e for e in os.listdir(os.path.dirname(channel)) if channel_io.STAGING_INFIX in e or ".old-" in e]
    assert leftovers == []
    for sub in channel_io.SUBDIRS:
        assert not [n for n in os.listdir(os.path.join(channel, sub)) if n.endswith(channel_io.PARTIAL_SUFFIX)]


def _run(args, timeout=120):
    return subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _run_killed(args, delay: float) -> bool:
    """Start the command, SIGKILL it after `delay` s; whether it was still running."""
    proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group: the indexer child dies too
        proc.wait()
        return True


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A source channel: a few packages in both subdirs, one of ~3 MB, indexed."""
    d = str(tmp_path_factory.mktemp("source") / "channel")
    expected = {}
    specs = [("alpha", 3_000_000, 1, "linux-64"), ("beta", 200_000, 2, "linux-64"), ("gamma", 50_000, 3, "noarch"),
             ("delta", 400_000, 4, "noarch"), ("eps", 1000, 5, "linux-64")]
    for name, size, seed, sub in specs:
        path = make_package(d, name, "1.0", size, seed, sub)
        expected[os.path.basename(path)] = (name, size, seed)
    channel_io.index(d)
    return d, expected


def _mirror_args(src: str, out: str):
    return [os.path.join(SCRIPTS, "mirror_channel.py"), os.path.join(src, "linux-64"), os.path.join(src, "noarch"),
            "--out", out]


def test_mirror_uninterrupted_then_rerun_copies_nothing(source, tmp_path):
    src, expected = source
    out = str(tmp_path / "mirror")
    first = _run(_mirror_args(src, out))
    assert first.returncode == 0, first.stderr
    assert "5 packages added" in first.stdout
    check_channel(out, expected)
    again = _run(_mirror_args(src, out))
    assert again.returncode == 0 and "0 packages added" in again.stdout


def test_mirror_rerun_repairs_a_truncated_package(source, tmp_path):
    src, expected = source
    out = str(tmp_path / "mirror")
    assert _run(_mirror_args(src, out)).returncode == 0
    victim = os.path.join(out, "linux-64", "alpha-1.0-h0_0.tar.bz2")
    with open(victim, "r+b") as f:  # what the old mirror left when killed mid-copy
        f.truncate(os.path.getsize(victim) // 3)
    result = _run(_mirror_args(src, out))
    assert result.returncode == 0 and "1 packages added" in result.stdout, result.stdout + result.stderr
    check_channel(out, expected)


def test_mirror_refuses_a_source_that_contradicts_its_repodata(source, tmp_path):
    src, _ = source
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(src, broken)
    victim = broken / "noarch" / "delta-1.0-h0_0.tar.bz2"
    victim.write_bytes(victim.read_bytes()[:1000])
    result = _run(_mirror_args(str(broken), str(tmp_path / "mirror")))
    assert result.returncode != 0 and "does not match its channel's repodata.json" in result.stderr


@pytest.mark.slow
def test_mirror_survives_kills_at_random_points(source, tmp_path):
    src, expected = source
    t0 = time.time()
    assert _run(_mirror_args(src, str(tmp_path / "timing"))).returncode == 0
    duration = time.time() - t0
    rng = random.Random(15)
    killed = 0
    for i in range(KILLS):
        out = str(tmp_path / f"mirror{i}")
        for _ in range(2):  # two kills in a row, then a full run
            killed += _run_killed(_mirror_args(src, out), rng.uniform(0.05, 0.95 * duration))
        result = _run(_mirror_args(src, out))
        assert result.returncode == 0, result.stderr
        check_channel(out, expected)
    print(f"mirror: {killed} of {2 * KILLS} runs killed mid-way, each followed by a verified rerun")
    assert killed >= 1, "no run was interrupted: the kill points are too late"


def _publish_args(package: str, channel: str):
    code = "import sys; sys.path.insert(0, 'scripts'); import build_variant as B; B.publish(sys.argv[1], sys.argv[2])"
    return ["-c", code, package, channel]


@pytest.mark.slow
def test_publish_survives_kills_at_random_points(tmp_path):
    staging = str(tmp_path / "built")
    channel = str(tmp_path / "channel")
    expected = {}
    packages = []
    for i in range(KILLS + 1):
        path = make_package(staging, f"pkg{i}", "1.0", 300_000 + 1000 * i, 100 + i)
        packages.append(path)
    # the first publish goes through (and gives the time span to kill in); then each
    # publish is killed twice at random points and rerun
    t0 = time.time()
    assert _run(_publish_args(packages[0], channel)).returncode == 0
    duration = time.time() - t0
    expected[os.path.basename(packages[0])] = ("pkg0", 300_000, 100)
    check_channel(channel, expected)
    rng = random.Random(16)
    killed = 0
    for i, path in enumerate(packages[1:], start=1):
        for _ in range(2):
            killed += _run_killed(_publish_args(path, channel), rng.uniform(0.05, 0.95 * duration))
            # whatever the kill interrupted, the channel is there and what it lists is whole
            assert os.path.isdir(channel)
            _check_listed_packages_are_whole(channel)
        result = _run(_publish_args(path, channel))
        assert result.returncode == 0, result.stderr
        expected[os.path.basename(path)] = (f"pkg{i}", 300_000 + 1000 * i, 100 + i)
        check_channel(channel, expected)
    print(f"publish: {killed} of {2 * KILLS} runs killed mid-way, each followed by a verified rerun")
    assert killed >= 1


def _check_listed_packages_are_whole(channel: str) -> None:
    for sub in channel_io.SUBDIRS:
        path = os.path.join(channel, sub, "repodata.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            repodata = json.load(f)  # never partial: it is renamed in whole
        for n, rec in repodata.get("packages", {}).items():
            file = os.path.join(channel, sub, n)
            assert os.path.getsize(file) == rec["size"] and channel_io.sha256_of(file) == rec["sha256"]


def test_publish_recovers_the_leftovers_of_the_rename_based_publish(tmp_path):
    built = str(tmp_path / "built")
    channel = str(tmp_path / "channel")
    a = make_package(built, "a", "1.0", 10_000, 1)
    b = make_package(built, "b", "1.0", 10_000, 2)
    c = make_package(built, "c", "1.0", 10_000, 3)
    # killed between its two renames: the channel is missing, its packages sit in .old-PID,
    # and a full staging copy is left behind
    old = tmp_path / "channel.old-4242" / "linux-64"
    os.makedirs(old)
    for p in (a, b):
        os.link(p, old / os.path.basename(p))
    stale_staging = tmp_path / ".channel-ab12cd34" / "linux-64"
    os.makedirs(stale_staging)
    os.link(a, stale_staging / os.path.basename(a))
    result = _run(_publish_args(c, channel))
    assert result.returncode == 0, result.stderr
    check_channel(channel, {os.path.basename(p): (n, 10_000, s) for p, n, s in ((a, "a", 1), (b, "b", 2), (c, "c", 3))})
    assert sorted(os.listdir(tmp_path)) == ["built", "channel"]


def test_publish_merges_an_orphaned_old_channel_next_to_a_live_one(tmp_path):
    built = str(tmp_path / "built")
    channel = str(tmp_path / "channel")
    a = make_package(built, "a", "1.0", 5_000, 1)
    b = make_package(built, "b", "1.0", 5_000, 2)
    assert _run(_publish_args(a, channel)).returncode == 0
    orphan = tmp_path / "channel.old-77" / "linux-64"
    os.makedirs(orphan)
    os.link(b, orphan / os.path.basename(b))
    (orphan / ".x.tar.bz2.abcdefgh.partial").write_bytes(b"junk")  # not a package
    c = make_package(built, "c", "1.0", 5_000, 3)
    assert _run(_publish_args(c, channel)).returncode == 0
    check_channel(channel, {os.path.basename(p): (n, 5_000, s) for p, n, s in ((a, "a", 1), (b, "b", 2), (c, "c", 3))})


def test_files_follow_the_umask(source, tmp_path):
    src, _ = source
    out = str(tmp_path / "mirror")
    code = f"import os, runpy, sys; os.umask(0o022); sys.argv = {_mirror_args(src, out)!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    assert _run(["-c", code]).returncode == 0
    for sub in channel_io.SUBDIRS:
        for n in os.listdir(os.path.join(out, sub)):
            if n.startswith("."):
                continue
            assert os.stat(os.path.join(out, sub, n)).st_mode & 0o777 == 0o644, n


# Deterministic kill points: the child SIGKILLs itself at the k-th file step (half-way
# through a package copy, just before a rename, or instead of running the indexer), for
# k = 1, 2, ... until a run completes; each killed run is followed by a full rerun.
_STEP_KILLER = """
import os, shutil, signal, subprocess, sys
sys.path.insert(0, "scripts")
k, calls = int(sys.argv[1]), [0]

def die_at_k():
    calls[0] += 1
    return calls[0] == k

def hook(orig):
    def wrapped(*args, **kwargs):
        if die_at_k():
            os.kill(os.getpid(), signal.SIGKILL)
        return orig(*args, **kwargs)
    return wrapped

def half_copy(src, dst, length=0):
    if die_at_k():
        data = src.read()
        dst.write(data[: len(data) // 2])
        dst.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return orig_copy(src, dst, length)

orig_copy = shutil.copyfileobj
shutil.copyfileobj = half_copy
os.replace = hook(os.replace)
subprocess.run = hook(subprocess.run)
sys.argv = sys.argv[2:]
if sys.argv[0] == "publish":
    import build_variant
    build_variant.publish(sys.argv[1], sys.argv[2])
else:
    import runpy
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _kill_at_every_step(args, rerun, check, limit=40) -> int:
    """Run `args` killed at step k = 1, 2, ...; after each kill, `rerun()` and `check()`.
    Returns the number of steps (kills)."""
    for k in range(1, limit):
        proc = _run(["-c", _STEP_KILLER, str(k)] + args)
        if proc.returncode == 0:
            return k - 1
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        rerun()
        check()
    raise AssertionError(f"still killed after {limit} steps")


@pytest.mark.slow
def test_mirror_killed_at_every_step(tmp_path):
    src = str(tmp_path / "source")
    expected = {}
    for name, size, seed, sub in (("big", 400_000, 7, "linux-64"), ("small", 2_000, 8, "noarch")):
        expected[os.path.basename(make_package(src, name, "1.0", size, seed, sub))] = (name, size, seed)
    channel_io.index(src)
    out = str(tmp_path / "mirror")
    import shutil

    def rerun():
        result = _run(_mirror_args(src, out))
        assert result.returncode == 0, result.stderr

    def check():
        check_channel(out, expected)
        shutil.rmtree(out)  # the next kill starts from an empty mirror again

    steps = _kill_at_every_step(_mirror_args(src, out), rerun, check)
    print(f"mirror: killed at each of its {steps} steps, each followed by a verified rerun")
    assert steps >= 2 * len(expected) + 3  # a copy and a rename per package, index, 2 repodata renames


@pytest.mark.slow
def test_publish_killed_at_every_step(tmp_path):
    built = str(tmp_path / "built")
    channel = str(tmp_path / "channel")
    first = make_package(built, "first", "1.0", 20_000, 1)
    second = make_package(built, "second", "1.0", 300_000, 2)
    assert _run(_publish_args(first, channel)).returncode == 0
    import shutil

    pristine = str(tmp_path / "pristine")
    shutil.copytree(channel, pristine)
    expected = {os.path.basename(first): ("first", 20_000, 1), os.path.basename(second): ("second", 300_000, 2)}

    def rerun():
        _check_listed_packages_are_whole(channel)  # before repair too
        assert _run(_publish_args(second, channel)).returncode == 0

    def check():
        check_channel(channel, expected)
        shutil.rmtree(channel)  # the next kill publishes `second` again onto the channel of `first`
        shutil.copytree(pristine, channel)

    steps = _kill_at_every_step(["publish", second, channel], rerun, check)
    print(f"publish: killed at each of its {steps} steps, each followed by a verified rerun")
    assert steps >= 4  # copy, rename, index, repodata renames
