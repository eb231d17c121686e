"""Build one variant of the conda package here, index it into a local channel, install and test it.

    python scripts/build_variant.py cpu                      # fast: C++ ops, the torch installed here
    python scripts/build_variant.py cu117 --python 3.11      # the anchor, legacy toolchain
    python scripts/build_variant.py cu118 --out channel/

Same semantics as recipe/build.sh: FORCE_CUDA=1 and TORCH_CUDA_ARCH_LIST from the variant
for CUDA variants (FORCE_CUDA=0 for CPU), MAX_JOBS from CPU_COUNT, then a PEP 517 wheel
(`pip wheel . --no-build-isolation --no-deps`) instead of `pip install .`. The wheel becomes
a .conda with whl2conda (layout, dist-info, entry points); its depends/constrains are then
set to exactly what meta.yaml declares for the variant (scripts/distro.py renders it).

Toolchains: CUDA variants of the pytorch stack build with the python of D2_TOOLCHAIN_PYTHON
(or --toolchain-python; required: a venv with torch 2.0.1, setuptools<70, numpy<2, see the
README) and the CUDA toolkit at D2_CUDA_HOME (default /usr: Debian's nvcc 11.8 with gcc-11). The CPU variant
builds with the current python unless a toolchain python is given; when that torch is not the
variant's pytorch, the package's pytorch/torchvision pins name the torch it was really built
against and the build says so (such a package is for local testing, not for publishing).

Testing: the package is installed with py-rattler into a fresh prefix. The channel model has
no real python/pytorch binaries, so the package's dependencies are not installed by rattler:
the tests run with the builder's python (its torch and other dependencies) and
PYTHONPATH set to the prefix's site-packages only. For CUDA variants, `cuobjdump --list-elf
--list-ptx` on the installed _C must show every SASS and PTX arch of the variant.
"""
import argparse
import asyncio
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distro  # noqa: E402
from distro import ROOT, V  # noqa: E402

def log(msg: str) -> None:
    print(f"[build_variant] {msg}", flush=True)


def run(cmd: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
        logfile: Optional[str] = None) -> str:
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if logfile:
        with open(logfile, "a") as f:
            f.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise SystemExit(f"error: command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def builder_python(variant: "V.Variant", given: Optional[str]) -> str:
    path = given or os.environ.get("D2_TOOLCHAIN_PYTHON")
    if not path and variant.stack == "pytorch" and variant.is_cuda:
        raise SystemExit(f"error: variant {variant.name} builds with torch {variant.pytorch}: set D2_TOOLCHAIN_PYTHON "
                         "or --toolchain-python to a python that has it (see README: Building the distribution)")
    path = path or sys.executable
    if not os.path.exists(path):
        raise SystemExit(f"error: toolchain python {path!r} does not exist; set D2_TOOLCHAIN_PYTHON or "
                         "--toolchain-python (see README: Building the distribution)")
    return path


def probe(python: str) -> Dict[str, str]:
    code = ("import json, sys, torch, torchvision; import numpy; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
            "'torch': torch.__version__.split('+')[0], 'torchvision': torchvision.__version__.split('+')[0], "
            "'torch_cuda': torch.version.cuda, 'numpy': numpy.__version__}))")
    try:
        return json.loads(run([python, "-c", code]).strip().splitlines()[-1])
    except SystemExit:
        code = code.replace(", torchvision", "").replace("torchvision.__version__.split('+')[0]", "None")
        return json.loads(run([python, "-c", code]).strip().splitlines()[-1])


# conda name -> pip name (pyproject's map, inverted) and -> import name, where they differ;
# packages with no python module (the interpreter, CUDA metapackages, virtual packages,
# MKL) are not checked.
_PIP_NAMES = {**{conda: pip for pip, conda in V.CONDA_NAMES.items()},
              "pytorch": "torch", "py-opencv": "opencv-python-headless"}
_IMPORT_NAMES = {"pillow": "PIL", "matplotlib-base": "matplotlib", "hydra-core": "hydra", "py-opencv": "cv2",
                 "pytorch": "torch"}
_NOT_PYTHON = {"python", "pytorch-cuda", "pytorch-mutex", "mkl", "cuda-arch", "cuda-version"}


def missing_run_dependencies(variant: "V.Variant", python: str, py: str) -> List[str]:
    """pip specs of the package's run dependencies that the builder's python cannot import.

    The installed package is tested with the builder's python (see the module doc), so it
    must hold what the package declares; checked before the minutes of compiling."""
    depends, _ = distro.run_requirements(variant.name, py)
    wanted = {}
    for spec in depends:
        name, _, version = spec.partition(" ")
        if name.startswith("__") or name in _NOT_PYTHON:
            continue
        wanted[_IMPORT_NAMES.get(name, name)] = _PIP_NAMES.get(name, name) + _pip_pin(version)
    code = ("import importlib.util, sys; "
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))")
    specs = [wanted[m] for m in run([python, "-c", code, *wanted]).split()]
    # A pinned numpy goes along even where numpy is there, so that pip does not upgrade it
    # for a newcomer (torch 2.0 breaks on numpy 2).
    numpy_pin = wanted.get("numpy", "numpy")
    if specs and numpy_pin != "numpy" and numpy_pin not in specs:
        specs.append(numpy_pin)
    return specs


def _pip_pin(version: str) -> str:
    """conda's version spec as pip's: '0.15.2.*' -> '==0.15.2.*', '>=1.1' stays; a spec
    with a build string ('2.0.1.* *cuda*') is left to the builder's probe."""
    if not version or " " in version:
        return ""
    return "==" + version if version[0].isdigit() else version


def build_env(variant: "V.Variant") -> Dict[str, str]:
    """recipe/build.sh's environment, plus the legacy toolchain's paths for CUDA 11.x."""
    env = dict(os.environ)
    env["MAX_JOBS"] = env.get("CPU_COUNT") or str(min(os.cpu_count() or 2, 2))
    if variant.is_cuda:
        env["FORCE_CUDA"] = "1"
        env["TORCH_CUDA_ARCH_LIST"] = variant.arch_list
        cuda_home = env.get("D2_CUDA_HOME", "/usr" if variant.stack == "pytorch" else "/usr/local/cuda")
        env["CUDA_HOME"] = cuda_home
        # /usr/local/bin holds CUDA 13 wrappers that must not leak into an 11.x build.
        env["PATH"] = os.path.join(cuda_home, "bin") + os.pathsep + env["PATH"]
        if variant.cuda.startswith("11."):
            env.setdefault("CC", f"gcc-{variant.gcc}")
            env.setdefault("CXX", f"g++-{variant.gcc}")
    else:
        env["FORCE_CUDA"] = "0"
        env.pop("TORCH_CUDA_ARCH_LIST", None)
    return env


def copy_source(dest: str, source: str = ROOT) -> None:
    """The source tree's files as git sees them (tracked + untracked, not ignored): no stale builds."""
    listing = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=source)
    for rel in filter(None, listing.split("\0")):
        src = os.path.join(source, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


# Lines of a compiler's output that name the real problem (gcc/clang/nvcc, ninja, ld).
_ERROR_LINE = re.compile(r"(\berror\b|fatal error|FAILED:|undefined reference|No such file or directory)", re.I)
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


def compiler_errors(log_text: str, limit: int = 25) -> List[str]:
    """The compiler's own error lines (with the line after each), not pip's wrapper traceback."""
    lines = log_text.splitlines()
    picked: List[str] = []
    for i, line in enumerate(lines):
        if _ERROR_LINE.search(line) and "subprocess-exited-with-error" not in line and not line.lstrip().startswith("│"):
            for extra in lines[i:i + 2]:
                if extra not in picked[-2:]:
                    picked.append(extra)
        if len(picked) >= limit:
            break
    return picked


def run_with_progress(cmd: List[str], env: Dict[str, str], cwd: str, logfile: str, what: str) -> None:
    """Run a long build, its whole output into ``logfile``; show ninja's [done/total] as a
    progress bar (else a line every 30 s); on failure print the compiler's errors and the log path."""
    from tqdm import tqdm

    log("$ " + " ".join(cmd))
    log(f"{what}: full output in {logfile}")
    start = last = time.time()
    bar = None
    with open(logfile, "a") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            out.write(line)
            step = _NINJA_STEP.match(line.strip())
            if step:
                done, total = int(step.group(1)), int(step.group(2))
                if bar is None:
                    bar = tqdm(total=total, desc=f"[build_variant] {what}", unit="file", file=sys.stdout,
                               mininterval=5 if not sys.stdout.isatty() else 0.1)
                bar.update(done - bar.n)
            elif bar is None and time.time() - last >= 30:
                last = time.time()
                log(f"{what}: {last - start:.0f} s, still running")
        code = proc.wait()
    if bar is not None:
        bar.close()
    if code != 0:
        with open(logfile) as f:
            errors = compiler_errors(f.read())
        shown = "\n".join("  " + e for e in errors) if errors else "  (no compiler error line found; see the log)"
        raise SystemExit(f"error: {what} failed ({code}). The compiler said:\n{shown}\nfull log: {logfile}")
    log(f"{what}: done in {time.time() - start:.0f} s")


def build_wheel(python: str, env: Dict[str, str], work: str, source: str = ROOT) -> str:
    src = os.path.join(work, "src-tree")
    copy_source(src, source)
    wheels = os.path.join(work, "wheels")
    run_with_progress([python, "-m", "pip", "wheel", ".", "--no-build-isolation", "--no-deps", "-vv", "-w", wheels],
                      env, src, os.path.join(work, "build.log"), "building the wheel (compiling _C)")
    (wheel,) = glob.glob(os.path.join(wheels, "detectron2-*.whl"))
    # whl2conda converts binary wheels only with a manylinux tag; the sysroot is glibc 2.17.
    run([python, "-m", "wheel", "tags", "--remove", "--platform-tag", "manylinux2014_x86_64", wheel])
    (wheel,) = glob.glob(os.path.join(wheels, "detectron2-*manylinux2014_x86_64.whl"))
    return wheel


def package_metadata(variant: "V.Variant", python: str, built: Dict[str, str]) -> Tuple[dict, List[str]]:
    """index.json fields from meta.yaml for this variant; notes on what had to differ."""
    meta = distro.rendered_for(variant.name, python)
    depends, constrains = distro.run_requirements(variant.name, python)
    notes = []
    if built["torch"] != variant.pytorch and not built["torch"].startswith(variant.pytorch + "."):
        notes.append(f"built against torch {built['torch']}, not the variant's pytorch {variant.pytorch}: "
                     "pytorch/torchvision pins name the torch used; for local testing, not for publishing")
        depends = [_repin(d, "pytorch", built["torch"]) for d in depends]
        if built.get("torchvision"):
            depends = [_repin(d, "torchvision", built["torchvision"]) for d in depends]
    numpy_spec = next((d for d in depends if d.split()[0] == "numpy"), None)
    if built.get("numpy") and numpy_spec and not _satisfies(built["numpy"], numpy_spec):
        major = int(built["numpy"].split(".")[0])
        depends = [f"numpy >={major},<{major + 1}" if d == numpy_spec else d for d in depends]
        notes.append(f"built and tested with numpy {built['numpy']}, outside meta.yaml's {numpy_spec!r}: "
                     f"the package depends on numpy {major}.x")
    if variant.is_cuda and built.get("torch_cuda") != variant.cuda:
        notes.append(f"torch here is its CUDA {built.get('torch_cuda')} build, the variant's pytorch is the "
                     f"CUDA {variant.cuda} build (same torch version and ABI); the ops are compiled by the "
                     f"nvcc at CUDA_HOME for {variant.arch_list}")
    index = {"name": "detectron2", "version": str(meta["package"]["version"]), "build": meta["build"]["string"],
             "build_number": int(meta["build"]["number"]), "depends": depends, "constrains": constrains,
             "license": meta["about"]["license"], "subdir": "linux-64", "arch": "x86_64", "platform": "linux",
             "timestamp": int(time.time() * 1000)}
    return index, notes


def _satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` meets a conda spec's version part ("numpy <2", "numpy >=1.21,<2")."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    parts = spec.split()
    if len(parts) < 2:
        return True
    wanted = parts[1].replace(".*", "")
    if not any(op in wanted for op in "<>=!"):
        wanted = f"=={wanted}.*" if wanted.count(".") < 2 else f"=={wanted}"
    return Version(version) in SpecifierSet(wanted)


def _repin(spec: str, name: str, version: str) -> str:
    parts = spec.split()
    if parts[0] != name:
        return spec
    major_minor = ".".join(version.split(".")[:2])
    return " ".join([name, f"{major_minor}.*"] + parts[2:])


def make_conda(wheel: str, index: dict, work: str) -> str:
    tree = os.path.join(work, "tree")
    run(["whl2conda", "convert", wheel, "--allow-impure", "--format", "tree", "--out-dir", tree,
         "--batch", "--yes", "--overwrite", "--build-number", str(index["build_number"])])
    (pkg_dir,) = [p for p in glob.glob(os.path.join(tree, "*")) if os.path.isdir(p)]
    with open(os.path.join(pkg_dir, "info", "index.json")) as f:
        generated = json.load(f)
    generated.pop("noarch", None)
    generated.update(index)
    with open(os.path.join(pkg_dir, "info", "index.json"), "w") as f:
        json.dump(generated, f, indent=2, sort_keys=True)
    add_console_scripts(pkg_dir)
    files = sorted(os.path.relpath(os.path.join(d, n), pkg_dir) for d, _, ns in os.walk(pkg_dir) for n in ns)
    from conda_package_handling import api as cph

    name = f"detectron2-{index['version']}-{index['build']}"
    out = os.path.join(work, "pkg")
    os.makedirs(out, exist_ok=True)
    cph.create(pkg_dir, files, name + ".conda", out)
    return os.path.join(out, name + ".conda")


# The prefix a text file names at build time; conda/rattler replace it with the
# environment's prefix at install time (declared per file in info/paths.json).
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"


def console_scripts(pkg_dir: str) -> Dict[str, str]:
    """{command: "module:function"} from the wheel's entry_points.txt in the package tree."""
    import configparser

    found = (glob.glob(os.path.join(pkg_dir, "lib", "python*", "site-packages", "*.dist-info", "entry_points.txt"))
             + glob.glob(os.path.join(pkg_dir, "site-packages", "*.dist-info", "entry_points.txt")))  # pure wheels
    scripts: Dict[str, str] = {}
    for path in found:
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # command names keep their case
        parser.read(path)
        if parser.has_section("console_scripts"):
            scripts.update({k.strip(): v.strip() for k, v in parser.items("console_scripts")})
    return scripts


def add_console_scripts(pkg_dir: str) -> List[str]:
    """bin/<command> for every console script: a package that is not noarch: python gets no
    entry points from link.json, so the launchers are files of the package, whose
    shebang names the environment's python (prefix replaced at install)."""
    scripts = console_scripts(pkg_dir)
    paths_file = os.path.join(pkg_dir, "info", "paths.json")
    with open(paths_file) as f:
        paths = json.load(f)
    added = []
    for name, target in sorted(scripts.items()):
        module, _, func = target.partition(":")
        text = (f"#!{PREFIX_PLACEHOLDER}/bin/python\n"
                f"# {name}: console script of detectron2 ({target})\n"
                f"import sys\nfrom {module} import {func.split('.')[0]}\n"
                f"if __name__ == \"__main__\":\n    sys.exit({func}())\n")
        rel = f"bin/{name}"
        os.makedirs(os.path.join(pkg_dir, "bin"), exist_ok=True)
        with open(os.path.join(pkg_dir, rel), "w") as f:
            f.write(text)
        os.chmod(os.path.join(pkg_dir, rel), 0o755)
        data = text.encode()
        paths["paths"] = [p for p in paths["paths"] if p["_path"] != rel] + [{
            "_path": rel, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data), "prefix_placeholder": PREFIX_PLACEHOLDER, "file_mode": "text"}]
        added.append(rel)
    with open(paths_file, "w") as f:
        json.dump(paths, f, indent=2, sort_keys=True)
    files_txt = os.path.join(pkg_dir, "info", "files")
    if os.path.isfile(files_txt):
        with open(files_txt) as f:
            listed = [line.rstrip("\n") for line in f if line.strip()]
        with open(files_txt, "w") as f:
            f.write("\n".join(sorted(set(listed) | set(added))) + "\n")
    with open(os.path.join(pkg_dir, "info", "has_prefix"), "a") as f:
        for rel in added:
            f.write(f"{PREFIX_PLACEHOLDER} text {rel}\n")
    link = os.path.join(pkg_dir, "info", "link.json")
    if os.path.isfile(link):
        os.remove(link)  # its noarch entry points would be ignored for this package anyway
    return added


def publish(package: str, channel: str) -> str:
    """Add `package` to `channel` and re-index it, never leaving the channel missing or a
    package lost (scripts/channel_io.py): the package is copied in under a temporary name and
    renamed once verified, and each repodata.json is replaced in one rename after the new
    index is checked. What an interrupted publish left is recovered first."""
    import channel_io

    channel = os.path.abspath(channel)
    with channel_io.channel_lock(channel):
        for note in channel_io.recover(channel):
            log(note)
        for sub in channel_io.SUBDIRS:
            os.makedirs(os.path.join(channel, sub), exist_ok=True)
        dest = os.path.join(channel, "linux-64", os.path.basename(package))
        channel_io.copy_verified(package, dest)
        channel_io.index(channel)
    return dest


def install(channel: str, build: str, prefix: str) -> None:
    import rattler

    repodata = rattler.RepoData.from_path(os.path.join(channel, "linux-64", "repodata.json"))
    records = repodata.into_repo_data(rattler.Channel("file://" + os.path.abspath(channel)))
    (record,) = [r for r in records if r.name.normalized == "detectron2" and str(r.build) == build]
    asyncio.run(rattler.install([record], prefix, cache_dir=os.path.join(prefix + "-cache"), show_progress=False))


def test_install(python: str, prefix: str, py: str, work: str, allow_missing_ops: bool) -> None:
    # The builder's python (its torch) with the installed package first on the path. A venv
    # with --system-site-packages would not do: made from a venv's python it sees the base
    # interpreter's site-packages, i.e. another torch.
    site = os.path.join(prefix, "lib", f"python{py}", "site-packages")
    env = dict(os.environ, PYTHONPATH=site, PYTHONNOUSERSITE="1")
    env.pop("PYTHONHOME", None)
    where = run([python, "-c", "import torch, detectron2, detectron2._C as C; print(torch.__file__); "
                 "print(detectron2.__file__); print(C.__file__)"], cwd=work, env=env).split()
    if not all(p.startswith(site) for p in where[-2:]):
        raise SystemExit(f"error: detectron2 was imported from {where[-2:]}, not from the installed package in {site}")
    log(f"torch from {where[-3]}")
    log(f"import ok: {where[-1]}")
    check_console_scripts(python, prefix, work, env)
    selftest = [python, os.path.join(ROOT, "recipe", "run_test.py")] + (["--allow-missing-ops"] if allow_missing_ops else [])
    print(run(selftest, cwd=work, env=env), end="")
    has_collect_env = run([python, "-c", "import importlib.util as u; print(u.find_spec('detectron2.utils.collect_env') is not None)"],
                          cwd=work, env=env).strip().endswith("True")
    if has_collect_env:
        print(run([python, "-m", "detectron2.utils.collect_env"], cwd=work, env=env), end="")
    else:
        log("NOTE: detectron2.utils.collect_env is not in this tree yet: not run")


def check_console_scripts(python: str, prefix: str, work: str, env: Dict[str, str]) -> None:
    """bin/detectron2-doctor, -train and -demo are in the prefix, name its python and run."""
    for name in ("detectron2-doctor", "detectron2-train", "detectron2-demo"):
        path = os.path.join(prefix, "bin", name)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise SystemExit(f"error: the installed package has no executable {path}")
        with open(path) as f:
            shebang = f.readline().strip()
        if shebang != f"#!{prefix}/bin/python":
            raise SystemExit(f"error: {path} starts with {shebang!r}, not the prefix's python")
        # The prefix has no python of its own here (see the module doc): the builder's runs it.
        run([python, path, "--help"], cwd=work, env=env)
    log(f"console scripts ok: {prefix}/bin/detectron2-{{doctor,train,demo}}")


def parse_cuobjdump(text: str) -> Tuple[set, set]:
    """SASS ("sm_80") and PTX ("compute_86") named by `cuobjdump --list-elf --list-ptx`."""
    sass = set(re.findall(r"\.(sm_\d+a?)\.cubin", text))
    ptx = {"compute_" + m for m in re.findall(r"\.sm_(\d+a?)\.ptx", text)}
    return sass, ptx


def uncovered_capabilities(variant: "V.Variant", sass: set, ptx: set) -> List[str]:
    """GPUs the package declares (its cuda-arch range) that the built ops have no code for."""
    from detectron2.utils._fatbin import kernel_image_for, parse_arch_flags

    entries = parse_arch_flags(" ".join(sorted(sass) + sorted(ptx)))
    return [c for c in variant.gpu_capabilities if kernel_image_for(V.cc_tuple(c), entries) is None]


def check_archs(variant: "V.Variant", prefix: str, env: Dict[str, str]) -> None:
    (so,) = glob.glob(os.path.join(prefix, "lib", "python*", "site-packages", "detectron2", "_C*.so"))
    cuobjdump = shutil.which("cuobjdump", path=env["PATH"]) or "cuobjdump"
    listing = subprocess.run([cuobjdump, "--list-elf", "--list-ptx", so], capture_output=True, text=True)
    text = listing.stdout + listing.stderr
    sass, ptx = parse_cuobjdump(text)
    log(f"cuobjdump: SASS {sorted(sass) or 'none'}, PTX {sorted(ptx) or 'none'}")
    missing = [a for a in variant.sass_archs if a not in sass] + [a for a in variant.ptx_archs if a not in ptx]
    if missing:
        raise SystemExit(f"error: the built _C lacks {missing} (expected SASS {list(variant.sass_archs)}, "
                         f"PTX {list(variant.ptx_archs)}); cuobjdump said:\n{text.strip() or '(nothing)'}")
    uncovered = uncovered_capabilities(variant, sass, ptx)
    if uncovered:
        raise SystemExit(f"error: the package declares cuda-arch {variant.cuda_arch_spec} but its ops have no "
                         f"code for {uncovered}")
    log(f"ops cover every GPU the package declares: cuda-arch {variant.cuda_arch_spec} ({variant.gpu_families})")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=[v.name for v in V.VARIANTS])
    parser.add_argument("--python", help="python x.y of the package (default: the builder's)")
    parser.add_argument("--out", default=os.path.join(ROOT, "channel"), help="local channel directory")
    parser.add_argument("--toolchain-python", help="python with the variant's torch (default: $D2_TOOLCHAIN_PYTHON)")
    parser.add_argument("--allow-missing-ops", action="store_true",
                        help="self-test reports ops this _C lacks instead of failing (tree without ops)")
    parser.add_argument("--source", default=ROOT,
                        help="git checkout to build (default: this repository); the recipe stays this one's")
    parser.add_argument("--wheel", help="package this already built wheel instead of building one")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary build directory")
    args = parser.parse_args(argv)

    variant = V.get_variant(args.variant)
    python = builder_python(variant, args.toolchain_python)
    built = probe(python)
    py = args.python or built["python"]
    if py != built["python"]:
        raise SystemExit(f"error: --python {py} but the builder {python} is python {built['python']}")
    if py not in variant.pythons:
        raise SystemExit(f"error: variant {variant.name} is built for python {', '.join(variant.pythons)}, not {py}")
    if variant.is_cuda and built["torch_cuda"] is None:
        raise SystemExit(f"error: {python} has a CPU-only torch; variant {variant.name} needs CUDA {variant.cuda}")
    log(f"variant {variant.name} python {py}: builder {python} (torch {built['torch']}, CUDA {built['torch_cuda']})")
    missing = missing_run_dependencies(variant, python, py)
    if missing:
        specs = " ".join(f'"{m}"' for m in missing)
        raise SystemExit(f"error: {python} lacks what the package needs at run time, so the installed package "
                         f"could not be tested; install it first: {python} -m pip install {specs}")

    work = tempfile.mkdtemp(prefix=f"d2-build-{variant.name}-")
    timings = {}
    t0 = time.time()
    env = build_env(variant)
    if args.wheel:
        wheel = os.path.join(work, "wheels", os.path.basename(args.wheel))
        os.makedirs(os.path.dirname(wheel))
        shutil.copy2(args.wheel, wheel)
        if "manylinux" not in wheel:
            run([python, "-m", "wheel", "tags", "--remove", "--platform-tag", "manylinux2014_x86_64", wheel])
            (wheel,) = glob.glob(os.path.join(work, "wheels", "detectron2-*manylinux2014_x86_64.whl"))
    else:
        wheel = build_wheel(python, env, work, os.path.abspath(args.source))
    timings["wheel"] = time.time() - t0
    index, notes = package_metadata(variant, py, built)
    for note in notes:
        log("WARNING: " + note)
    package = make_conda(wheel, index, work)
    published = publish(package, args.out)
    log(f"channel {os.path.abspath(args.out)}: {os.path.basename(published)}")
    t1 = time.time()
    prefix = os.path.join(work, "prefix")
    install(args.out, index["build"], prefix)
    if variant.is_cuda:
        check_archs(variant, prefix, env)
    test_install(python, prefix, py, work, args.allow_missing_ops)
    timings["install+test"] = time.time() - t1
    log("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + f", total {time.time() - t0:.0f}s")
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"work directory kept: {work}")
    return 0


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    # py-rattler 0.28's runtime can crash during interpreter teardown: leave directly.
    os._exit(code)
