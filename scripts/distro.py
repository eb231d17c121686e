"""Variant files and recipe rendering, all derived from detectron2/utils/variants.py.

    python scripts/distro.py write    # regenerate conda_build_config.yaml and the env files
    python scripts/distro.py check    # fail if a generated file differs from variants.py
    python scripts/distro.py render cu117 3.11   # the recipe's requirements for one variant
    python scripts/distro.py config-row cu117 3.11 [linux-64]   # one CI job's variant file
    python scripts/distro.py platform-config linux-aarch64      # one platform's variant file

The renderer is a minimal stand-in for `conda render` (no conda-build can be installed on
the project's machines): Jinja2 first, then `# [expr]` selectors evaluated against the
variant, as conda-build does. It models only what our recipe uses, and is used to check
the recipe and to give built packages exactly the dependencies meta.yaml declares.
"""
import hashlib
import json
import os
import re
import sys
from typing import Dict, List, Optional, Tuple

import jinja2
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from detectron2.utils import variants as V  # noqa: E402

RECIPE = os.path.join(ROOT, "recipe", "meta.yaml")
CONFIG = os.path.join(ROOT, "conda_build_config.yaml")
ENV_DIR = os.path.join(ROOT, "envs")
GENERATED = "# Generated from src/detectron2/utils/variants.py by `python scripts/distro.py write`: do not edit.\n"

# Keys zipped together: one row per (variant, platform, python, build), so no other
# combination exists. Values derived from the variant are precomputed here, because
# conda-forge's linter renders meta.yaml without variant values (no filters, no methods).
ZIP_KEYS = (
    "d2_variant", "target_platform", "python", "d2_stack", "d2_build_prefix", "d2_build_number", "d2_arch_gate",
    "pytorch", "pytorch_build", "torchvision", "pytorch_cuda", "cuda_compiler", "cuda_compiler_version",
    "torch_cuda_arch_list", "d2_cuda_arch", "d2_cuda_arch_min", "d2_cuda_version",
    "c_compiler_version", "cxx_compiler_version",
)


def variant_rows() -> List[Dict[str, str]]:
    """Every (variant, platform, python, build) as the dict of conda_build_config keys it sets."""
    rows = []
    for v in V.VARIANTS:
        for platform in v.platforms:
            for py in v.pythons:
                for build in v.builds():
                    rows.append(_row(v, platform, py, build))
    return rows


def _row(v: "V.Variant", platform: str, py: str, build: "V.Build") -> Dict[str, str]:
    return {
        "d2_variant": v.name,
        "target_platform": platform,
        "python": py,
        "d2_stack": v.stack,
        "d2_build_prefix": v.build_prefix,
        "d2_build_number": str(build.number),
        "d2_arch_gate": "yes" if build.gated else "no",
        "pytorch": v.pytorch,
        "pytorch_build": v.pytorch_build,
        "torchvision": v.torchvision,
        "pytorch_cuda": v.cuda if (v.is_cuda and v.stack == "pytorch") else "None",
        "cuda_compiler": v.cuda_compiler or "None",
        "cuda_compiler_version": v.cuda_compiler_version,
        "torch_cuda_arch_list": v.arch_list or "None",
        "d2_cuda_arch": v.cuda_arch_spec or "None",
        "d2_cuda_arch_min": v.cuda_arch_min or "None",
        "d2_cuda_version": v.cuda_version_spec or "None",
        "c_compiler_version": v.gcc,
        "cxx_compiler_version": v.gcc,
    }


def config_text() -> str:
    rows = variant_rows()
    out = [GENERATED, "# One row per (variant, platform, python, build): every key below is zipped, see zip_keys.\n"]
    for key, value in (("c_compiler", "gcc"), ("cxx_compiler", "gxx"), ("c_stdlib", "sysroot"),
                       ("c_stdlib_version", "2.17")):
        out.append(f"{key}:\n  - {_q(value)}\n")
    for key in ZIP_KEYS:
        out.append(f"{key}:\n" + "".join(f"  - {_q(r[key])}\n" for r in rows))
    out.append("zip_keys:\n  -\n" + "".join(f"    - {k}\n" for k in ZIP_KEYS))
    return "".join(out)


def _q(value: str) -> str:
    return '"' + value + '"'


def env_files() -> Dict[str, str]:
    """Relative path -> content of environment.yml (the anchor) and envs/<variant>.yml."""
    files = {}
    for v in V.VARIANTS:
        path = "environment.yml" if v.name == V.DEFAULT_VARIANT else f"envs/{v.name}.yml"
        files[path] = _env_text(v)
    return files


def env_specs(v: "V.Variant") -> List[str]:
    py = v.pythons[-1]
    specs = [f"python={py}", f"pytorch={v.pytorch}={v.pytorch_build}"]
    if v.stack == "pytorch":
        specs.append(f"pytorch-cuda={v.cuda}" if v.is_cuda else "cpuonly")
    elif v.is_cuda:
        specs.append(f"cuda-version={v.cuda}")
    specs.append(f"torchvision={v.torchvision}")
    specs.append(f"{V.CHANNEL}::detectron2={V.PACKAGE_VERSION}={v.build_prefix}*")
    return specs


def _env_text(v: "V.Variant") -> str:
    what = f"CUDA {v.cuda} (driver >= {v.min_driver})" if v.is_cuda else "CPU only"
    gpus = (f"# GPUs: {v.gpu_families}; the package requires cuda-arch {v.cuda_arch_spec}, so a client that\n"
            "# reports __cuda_arch refuses it elsewhere (GPU-less node: CONDA_OVERRIDE_CUDA_ARCH=<major.minor>).\n"
            if v.is_cuda else "# No GPU code: refused where the client reports a GPU (CONDA_OVERRIDE_CUDA_ARCH= allows it).\n")
    lines = [GENERATED, f"# detectron2 {V.PACKAGE_VERSION}, variant {v.name}: pytorch {v.pytorch}, {what}.\n", gpus,
             f"# mamba env create -f {'environment.yml' if v.name == V.DEFAULT_VARIANT else 'envs/' + v.name + '.yml'}\n",
             "name: detectron2\n", "channels:\n"]
    lines += [f"  - {c}\n" for c in (V.CHANNEL,) + v.channels]
    lines.append("  - nodefaults\n")
    lines.append("dependencies:\n")
    lines += [f"  - {s}\n" for s in env_specs(v)]
    return "".join(lines)


# CUDA images whose nvcc the 11.x `nvcc` compiler wrapper uses; later CUDA comes from
# conda-forge's cuda-nvcc, so those variants (and CPU) build in a plain image.
CI_IMAGES = {"11.7": "nvidia/cuda:11.7.1-devel-ubuntu20.04", "11.8": "nvidia/cuda:11.8.0-devel-ubuntu22.04"}
CI_PLAIN_IMAGE = "ubuntu:22.04"


def _matches(row: Dict[str, str], variant: str, python: str, platform: str) -> bool:
    return row["d2_variant"] == variant and row["python"] == python and row["target_platform"] == platform


def single_row_config(variant: str, python: str, platform: str = "linux-64") -> str:
    """conda_build_config.yaml reduced to one (variant, python, platform): one conda-build
    job, which builds every build of it (the anchor has two, see variants.Build)."""
    rows = [r for r in variant_rows() if _matches(r, variant, python, platform)]
    if not rows:
        raise SystemExit(f"error: no variant row for {variant!r}, python {python}, platform {platform}")
    cfg = yaml.safe_load(config_text())
    lines = [GENERATED]
    for key, values in cfg.items():
        if key == "zip_keys":
            continue
        chosen = [r[key] for r in rows] if key in ZIP_KEYS else [values[0]]
        lines.append(f"{key}:\n" + "".join(f"  - {_q(str(c))}\n" for c in chosen))
    if len(rows) > 1:
        lines.append("zip_keys:\n  -\n" + "".join(f"    - {k}\n" for k in ZIP_KEYS))
    return "".join(lines)


def platform_config(platform: str) -> str:
    """The variant file of one target platform (target_platform a single value, as in
    conda-smithy's per-platform .ci_support files): what conda-build's rattler-build path
    needs to render recipe/v1/recipe.yaml."""
    rows = [r for r in variant_rows() if r["target_platform"] == platform]
    if not rows:
        raise SystemExit(f"error: no variant rows for platform {platform!r}")
    cfg = yaml.safe_load(config_text())
    zipped = [k for k in ZIP_KEYS if k != "target_platform"]
    lines = [GENERATED, f"target_platform:\n  - {_q(platform)}\n"]
    for key, values in cfg.items():
        if key in ("zip_keys", "target_platform"):
            continue
        chosen = [r[key] for r in rows] if key in zipped else [values[0]]
        lines.append(f"{key}:\n" + "".join(f"  - {_q(str(c))}\n" for c in chosen))
    lines.append("zip_keys:\n  -\n" + "".join(f"    - {k}\n" for k in zipped))
    return "".join(lines)


# GitHub runners per target platform (aarch64 builds natively on the arm runners).
CI_RUNNERS = {"linux-64": "ubuntu-22.04", "linux-aarch64": "ubuntu-22.04-arm"}


def workflow_text() -> str:
    with open(os.path.join(ROOT, "scripts", "conda_workflow.yml.in")) as f:
        template = f.read()
    include = []
    for v in V.VARIANTS:
        channels = " ".join(f"-c {c}" for c in v.channels)
        for platform in v.platforms:
            for py in v.pythons:
                # The build machine reports no GPU: pin __cuda_arch to the host's cuda-arch
                # so that the host pin and the test environment (gated build) both resolve.
                include.append(
                    f"          - {{variant: {v.name}, platform: {platform}, python: \"{py}\", "
                    f"cuda: \"{v.cuda or 'none'}\", cuda_arch: \"{v.cuda_arch_min or ''}\", "
                    f"runner: {CI_RUNNERS[platform]}, "
                    f"image: \"{CI_IMAGES.get(v.cuda or '', CI_PLAIN_IMAGE)}\", channels: \"{channels}\"}}\n")
    return GENERATED + template.replace("@MATRIX@\n", "".join(include))


# --- the recipe renderer ---------------------------------------------------------------

_SELECTOR = re.compile(r"^(?P<line>.*?)\s*#\s*\[(?P<expr>.*)\]\s*$")


def _compiler(row: Dict[str, str], lang: str) -> str:
    return f"{row[lang + '_compiler']}_{row['target_platform']} {row[lang + '_compiler_version']}"


def _config_rows() -> List[Dict[str, str]]:
    """The rows of the committed conda_build_config.yaml, read as conda-build would."""
    with open(CONFIG) as f:
        cfg = yaml.safe_load(f)
    zipped = cfg["zip_keys"][0]
    n = len(cfg[zipped[0]])
    single = {k: vals[0] for k, vals in cfg.items() if k != "zip_keys" and k not in zipped}
    return [dict(single, **{k: str(cfg[k][i]) for k in zipped}) for i in range(n)]


def config_rows() -> List[Dict[str, str]]:
    return _config_rows()


def variant_hash(row: Dict[str, str]) -> str:
    """Seven hex digits from the variant's keys, standing in for conda-build's PKG_HASH."""
    blob = json.dumps(row, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:7]


def render(row: Dict[str, str], pkg_hash: Optional[str] = None) -> dict:
    """Render meta.yaml for one conda_build_config row; returns the parsed recipe dict."""
    with open(RECIPE) as f:
        text = f.read()
    pkg_hash = pkg_hash or variant_hash(row)
    meta = _render_text(text, row, pkg_hash, "0")
    number = str(meta["build"]["number"])  # conda-build renders again once it knows the number
    return _render_text(text, row, pkg_hash, number)


def _render_text(text: str, row: Dict[str, str], pkg_hash: str, buildnum: str) -> dict:
    py = row["python"].replace(".", "")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    ctx = dict(row, PKG_HASH=pkg_hash, PKG_BUILDNUM=buildnum, CONDA_PY=py,
               compiler=lambda lang: _compiler(row, lang),
               stdlib=lambda lang: f"{row[lang + '_stdlib']}_{row['target_platform']} {row[lang + '_stdlib_version']}")
    rendered = env.from_string(text).render(**ctx)
    kept = []
    platform = row["target_platform"]
    names = dict(row, linux=True, linux64=platform == "linux-64", aarch64=platform == "linux-aarch64",
                 unix=True, win=False, osx=False, py=int(py))
    for line in rendered.splitlines():
        m = _SELECTOR.match(line)
        if m:
            if not eval(m.group("expr"), {"__builtins__": {}}, names):  # noqa: S307 (our own recipe)
                continue
            line = m.group("line")
        kept.append(line)
    meta = yaml.safe_load("\n".join(kept))
    _pin_python(meta, row["python"])
    return meta


def _pin_python(meta: dict, python: str) -> None:
    # conda-build pins an unpinned `python` in run to the host's x.y (pin_run_as_build).
    major, minor = python.split(".")
    run = meta["requirements"]["run"]
    meta["requirements"]["run"] = [
        f"python >={python},<{major}.{int(minor) + 1}.0a0" if r == "python" else r for r in run
    ]


def rendered_for(variant: str, python: str, platform: str = "linux-64", gated: bool = False,
                 pkg_hash: Optional[str] = None) -> dict:
    for row in config_rows():
        if _matches(row, variant, python, platform) and (row["d2_arch_gate"] == "yes") == gated:
            return render(row, pkg_hash)
    raise SystemExit(f"error: conda_build_config.yaml has no row for variant {variant!r} with python {python} "
                     f"on {platform}" + (" (gated build)" if gated else ""))


# run_exports of host packages that conda-build adds to the package's run requirements.
RUN_EXPORTS = {"cuda-arch": ">={version}"}


def package_depends(meta: dict) -> Tuple[List[str], List[str]]:
    """(depends, constrains) of the built package: run plus the host run_exports we model."""
    reqs = meta["requirements"]
    depends = [_conda_spec(s) for s in reqs["run"]]
    for spec in reqs.get("host") or []:
        name, *rest = str(spec).split()
        if name in RUN_EXPORTS and rest:
            exported = f"{name} {RUN_EXPORTS[name].format(version=rest[0])}"
            if exported not in depends:
                depends.append(exported)
    return depends, [_conda_spec(s) for s in reqs.get("run_constrained") or []]


def run_requirements(variant: str, python: str, platform: str = "linux-64",
                     gated: bool = False) -> Tuple[List[str], List[str]]:
    """(depends, constrains) that the package built from meta.yaml declares."""
    return package_depends(rendered_for(variant, python, platform, gated))


def _conda_spec(spec: str) -> str:
    return " ".join(str(spec).split())


def check() -> List[str]:
    problems = []
    expected = generated_files()
    for rel, text in expected.items():
        path = os.path.join(ROOT, rel)
        if not os.path.exists(path):
            problems.append(f"{rel} is missing")
            continue
        with open(path) as f:
            if f.read() != text:
                problems.append(f"{rel} differs from what variants.py gives")
    return problems


def generated_files() -> Dict[str, str]:
    return dict(env_files(), **{"conda_build_config.yaml": config_text(),
                                ".github/workflows/conda.yml": workflow_text()})


def write() -> None:
    os.makedirs(ENV_DIR, exist_ok=True)
    os.makedirs(os.path.join(ROOT, ".github", "workflows"), exist_ok=True)
    for rel, text in generated_files().items():
        with open(os.path.join(ROOT, rel), "w") as f:
            f.write(text)
        print("wrote", rel)


def main(argv: List[str]) -> int:
    if argv[:1] == ["write"]:
        write()
        return 0
    if argv[:1] == ["check"]:
        problems = check()
        for p in problems:
            print("error:", p)
        return 1 if problems else 0
    if argv[:1] == ["config-row"] and len(argv) in (3, 4):
        sys.stdout.write(single_row_config(*argv[1:]))
        return 0
    if argv[:1] == ["platform-config"] and len(argv) == 2:
        sys.stdout.write(platform_config(argv[1]))
        return 0
    if argv[:1] == ["render"] and len(argv) == 3:
        print(yaml.safe_dump(rendered_for(argv[1], argv[2]), sort_keys=False))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
