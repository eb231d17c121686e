#!/usr/bin/env python3
"""Turn an installed detectron2 environment into Lmod (Lua) and Environment Modules (Tcl)
modulefiles.

    python scripts/hpc/modulefiles.py --prefix /sw/envs/detectron2-cu117 --out /sw/modulefiles

writes ``<out>/lua/detectron2/<version>.lua`` and ``<out>/tcl/detectron2/<version>``.
Loading a module does what ``conda activate`` does to the environment that matters
(CONDA_PREFIX, PATH, the variables the environment's activate.d scripts set) but never
touches LD_LIBRARY_PATH: conda environments find their libraries through RPATH, and a
module that exports their lib/ breaks every other program of the user's session.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
from detectron2.utils.variants import COMPUTE_CAPABILITIES, GPU_FAMILIES, MIN_LINUX_DRIVER, VARIANTS, serving  # noqa: E402

MODULE_NAME = "detectron2"
# Variables a module must never set: they leak the environment into unrelated programs.
FORBIDDEN_VARS = {"LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "PYTHONHOME"}
# Variables of the bash subshell itself, not of the activation scripts.
SHELL_NOISE = {"_", "SHLVL", "PWD", "OLDPWD", "BASH_FUNC_module%%", "BASH_FUNC_ml%%"}
PINNED_PACKAGES = ("python", "pytorch", "torchvision", "pytorch-cuda", "cuda-cudart", "cudatoolkit",
                   "cuda-version", "cudnn", "numpy")


@dataclass
class EnvFacts:
    prefix: Path
    version: str  # module version, e.g. "0.7.0-cu117"
    variant: str
    packages: Dict[str, str]  # name -> "version build"
    arch_list: Optional[str]
    min_driver: Optional[str]
    # Compute capabilities the whole environment (pytorch AND ops) has kernels for, and for
    # each other capability the variants that do (variants.py: the table conda solves with).
    gpu_caps: Tuple[str, ...] = ()
    gpu_families: str = ""
    others: Dict[str, str] = field(default_factory=dict)
    setenv: Dict[str, str] = field(default_factory=dict)
    prepend: List[Tuple[str, str]] = field(default_factory=list)
    append: List[Tuple[str, str]] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)


def read_conda_meta(prefix: Path) -> Dict[str, Tuple[str, str]]:
    """name -> (version, build) of every package recorded in the prefix's conda-meta."""
    records = {}
    for path in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if "name" in data and "version" in data:
            records[data["name"]] = (str(data["version"]), str(data.get("build", "")))
    return records


def detect_variant(build: str) -> str:
    """The variant tag our build strings start with (e.g. 'cu117_sm80sm86ptx_py311h..._0')."""
    for variant in VARIANTS:
        if build == variant.name or build.startswith(variant.name + "_"):
            return variant.name
    raise ValueError(f"cannot tell the build variant from detectron2's build string {build!r}")


def activation_effects(prefix: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Environment before and after sourcing the prefix's etc/conda/activate.d/*.sh, in a
    clean bash, the way `conda activate` runs them (CONDA_PREFIX set, sorted order)."""
    scripts = sorted((prefix / "etc" / "conda" / "activate.d").glob("*.sh"))
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "CONDA_PREFIX": str(prefix)}
    with tempfile.TemporaryDirectory() as tmp:
        before, after = Path(tmp, "before"), Path(tmp, "after")
        sources = "".join(f'. "{s}"\n' for s in scripts)
        script = f'env -0 > "{before}"\n{sources}env -0 > "{after}"\n'
        subprocess.run(["bash", "--noprofile", "--norc", "-c", script], env=base, check=True)
        parse = lambda p: dict(kv.split("=", 1) for kv in p.read_text().split("\0") if "=" in kv)  # noqa: E731
        return parse(before), parse(after)


def path_change(old: str, new: str) -> Optional[Tuple[List[str], List[str]]]:
    """(prepended, appended) entries when `new` is `old` with entries added at its ends."""
    old_parts = [p for p in old.split(":") if p]
    new_parts = [p for p in new.split(":") if p]
    for i in range(len(new_parts) - len(old_parts) + 1):
        if new_parts[i:i + len(old_parts)] == old_parts:
            return new_parts[:i], new_parts[i + len(old_parts):]
    return None


def collect(prefix: Path, variant: Optional[str] = None) -> EnvFacts:
    prefix = prefix.resolve()
    meta = read_conda_meta(prefix)
    if MODULE_NAME not in meta:
        raise SystemExit(f"{prefix}: no detectron2 package recorded in conda-meta/ (is this an environment "
                         "installed from the detectron2 channel?)")
    version, build = meta[MODULE_NAME]
    variant = variant or detect_variant(build)
    info = next(v for v in VARIANTS if v.name == variant)
    facts = EnvFacts(
        prefix=prefix,
        version=f"{version}-{variant}",
        variant=variant,
        packages={n: " ".join(meta[n]) for n in PINNED_PACKAGES if n in meta},
        arch_list=info.arch_list,
        min_driver=MIN_LINUX_DRIVER.get(info.cuda) if info.cuda else None,
        gpu_caps=info.gpu_capabilities,
        gpu_families=info.gpu_families,
        others={c: ", ".join(v.name for v in serving(c)) or "none" for c in COMPUTE_CAPABILITIES
                if c not in info.gpu_capabilities} if info.is_cuda else {},
    )
    facts.setenv.update({"CONDA_PREFIX": str(prefix), "CONDA_DEFAULT_ENV": prefix.name})
    facts.prepend.append(("PATH", str(prefix / "bin")))
    before, after = activation_effects(prefix)
    for name in sorted(set(after) - SHELL_NOISE):
        old, new = before.get(name), after[name]
        if new == old or name in ("CONDA_PREFIX",):
            continue
        if name in FORBIDDEN_VARS:
            facts.dropped.append(name)
            continue
        change = path_change(old, new) if old else None
        if change:
            facts.prepend += [(name, p) for p in reversed(change[0])]
            facts.append += [(name, p) for p in change[1]]
        else:
            facts.setenv[name] = new
    return facts


def _help_text(f: EnvFacts) -> List[str]:
    lines = [f"detectron2 {f.version}: object detection library with matched CUDA ops",
             f"Environment: {f.prefix}"]
    lines += [f"  {name} {ver}" for name, ver in f.packages.items()]
    lines.append(f"  GPU architectures: {f.arch_list or 'none (CPU build)'}")
    if f.min_driver:
        lines.append(f"  Needs NVIDIA driver >= {f.min_driver}")
    if f.gpu_caps:
        lines.append(f"  GPUs served: {f.gpu_families}")
    lines.append("Check the node with: detectron2-doctor")
    return lines


def _lua_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_lua(f: EnvFacts) -> str:
    out = [f"-- detectron2 {f.version}, generated by scripts/hpc/modulefiles.py", "help([["]
    out += _help_text(f) + ["]])"]
    out.append(f'whatis("Name: detectron2")')
    out.append(f"whatis({_lua_str('Version: ' + f.version)})")
    for name, ver in f.packages.items():
        out.append(f"whatis({_lua_str(f'{name}: {ver}')})")
    out.append(f"whatis({_lua_str('GPU architectures: ' + (f.arch_list or 'none (CPU build)'))})")
    out.append(f'conflict("{MODULE_NAME}")')
    for name, value in f.setenv.items():
        out.append(f"setenv({_lua_str(name)}, {_lua_str(value)})")
    for name, value in f.prepend:
        out.append(f"prepend_path({_lua_str(name)}, {_lua_str(value)})")
    for name, value in f.append:
        out.append(f"append_path({_lua_str(name)}, {_lua_str(value)})")
    for name in f.dropped:
        out.append(f"-- not set: {name} (activation scripts set it; modules must not leak it)")
    if f.min_driver:
        out += [_LUA_DRIVER_CHECK.replace("@MIN@", f.min_driver).replace("@VERSION@", f.version)]
    if f.gpu_caps:
        served = ", ".join(f'["{c}"] = true' for c in f.gpu_caps)
        others = ", ".join(f'["{c}"] = {_lua_str(names)}' for c, names in f.others.items())
        out += [_LUA_GPU_CHECK.replace("@SERVED@", served).replace("@OTHERS@", others)
                .replace("@FAMILIES@", f.gpu_families).replace("@VERSION@", f.version)]
    return "\n".join(out) + "\n"


def _tcl_str(s: str) -> str:
    return '"' + re.sub(r'([\\"$\[\]])', r"\\\1", s) + '"'


def render_tcl(f: EnvFacts) -> str:
    out = ["#%Module1.0", f"## detectron2 {f.version}, generated by scripts/hpc/modulefiles.py", "proc ModulesHelp { } {"]
    out += [f"    puts stderr {_tcl_str(line)}" for line in _help_text(f)] + ["}"]
    out.append(f"module-whatis {_tcl_str('Name: detectron2')}")
    out.append(f"module-whatis {_tcl_str('Version: ' + f.version)}")
    for name, ver in f.packages.items():
        out.append(f"module-whatis {_tcl_str(f'{name}: {ver}')}")
    out.append(f"module-whatis {_tcl_str('GPU architectures: ' + (f.arch_list or 'none (CPU build)'))}")
    out.append(f"conflict {MODULE_NAME}")
    for name, value in f.setenv.items():
        out.append(f"setenv {name} {_tcl_str(value)}")
    for name, value in f.prepend:
        out.append(f"prepend-path {name} {_tcl_str(value)}")
    for name, value in f.append:
        out.append(f"append-path {name} {_tcl_str(value)}")
    for name in f.dropped:
        out.append(f"# not set: {name} (activation scripts set it; modules must not leak it)")
    if f.min_driver:
        out += [_TCL_DRIVER_CHECK.replace("@MIN@", f.min_driver).replace("@VERSION@", f.version)]
    if f.gpu_caps:
        served = " ".join(f.gpu_caps)
        others = " ".join(f"{c} {{{names}}}" for c, names in f.others.items())
        out += [_TCL_GPU_CHECK.replace("@SERVED@", served).replace("@OTHERS@", others)
                .replace("@FAMILIES@", f.gpu_families).replace("@VERSION@", f.version)]
    return "\n".join(out) + "\n"


# The node's driver: DETECTRON2_DRIVER_VERSION overrides (nodes where /proc is hidden, tests).
_LUA_DRIVER_CHECK = r"""
if mode() == "load" then
  local function driver_version()
    local forced = os.getenv("DETECTRON2_DRIVER_VERSION")
    if forced and forced ~= "" then return forced end
    local f = io.open("/proc/driver/nvidia/version", "r")
    if not f then return nil end
    local text = f:read("*a") or ""
    f:close()
    return text:match("Kernel Module[^%d]*([%d%.]+)")
  end
  local function older(a, b)
    local pa, pb = {}, {}
    for n in a:gmatch("%d+") do pa[#pa + 1] = tonumber(n) end
    for n in b:gmatch("%d+") do pb[#pb + 1] = tonumber(n) end
    for i = 1, math.max(#pa, #pb) do
      local x, y = pa[i] or 0, pb[i] or 0
      if x ~= y then return x < y end
    end
    return false
  end
  local found = driver_version()
  if found == nil then
    LmodMessage("detectron2/@VERSION@: no NVIDIA driver on this node; only the CPU ops will run here")
  elseif older(found, "@MIN@") then
    LmodWarning("detectron2/@VERSION@: NVIDIA driver " .. found .. " on this node is older than @MIN@, "
      .. "which this build's CUDA runtime needs; CUDA ops will fail here. Use a node with a newer driver "
      .. "or a module built for an older CUDA.")
  end
end"""

_TCL_DRIVER_CHECK = r"""
if {[module-info mode load]} {
    set found ""
    if {[info exists ::env(DETECTRON2_DRIVER_VERSION)] && $::env(DETECTRON2_DRIVER_VERSION) ne ""} {
        set found $::env(DETECTRON2_DRIVER_VERSION)
    } elseif {[file readable /proc/driver/nvidia/version]} {
        set fh [open /proc/driver/nvidia/version r]
        regexp {Kernel Module[^0-9]*([0-9.]+)} [read $fh] -> found
        close $fh
    }
    if {$found eq ""} {
        puts stderr "detectron2/@VERSION@: no NVIDIA driver on this node; only the CPU ops will run here"
    } elseif {[package vcompare $found @MIN@] < 0} {
        puts stderr "WARNING: detectron2/@VERSION@: NVIDIA driver $found on this node is older than @MIN@, which this build's CUDA runtime needs; CUDA ops will fail here. Use a node with a newer driver or a module built for an older CUDA."
    }
}"""


# The node's GPUs (compute capabilities): DETECTRON2_GPU_CAPABILITIES ("9.0,8.0") overrides
# (tests, nodes without nvidia-smi); a GPU the build has no kernels for gets a warning that
# names the variants which do (the same table conda's solver uses, from variants.py).
_LUA_GPU_CHECK = r"""
if mode() == "load" then
  local served = { @SERVED@ }
  local others = { @OTHERS@ }
  local caps = os.getenv("DETECTRON2_GPU_CAPABILITIES")
  if caps == nil or caps == "" then
    -- Lmod's sandbox has no io.popen: capture() is its way to run a command.
    local ok, text = pcall(capture, "nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null")
    caps = ok and text or ""
  end
  for cap in caps:gmatch("%d+%.%d+") do
    if not served[cap] then
      LmodWarning("detectron2/@VERSION@: GPU sm_" .. cap:gsub("%.", "") .. " on this node has no kernels in this "
        .. "build (it serves @FAMILIES@); CUDA ops will fail here with 'no kernel image'. Variants "
        .. "with code for it: " .. (others[cap] or "unknown") .. ".")
    end
  end
end"""

_TCL_GPU_CHECK = r"""
if {[module-info mode load]} {
    set served {@SERVED@}
    array set others {@OTHERS@}
    set caps ""
    if {[info exists ::env(DETECTRON2_GPU_CAPABILITIES)] && $::env(DETECTRON2_GPU_CAPABILITIES) ne ""} {
        set caps $::env(DETECTRON2_GPU_CAPABILITIES)
    } else {
        catch {set caps [exec nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null]}
    }
    foreach cap [regexp -all -inline {[0-9]+\.[0-9]+} $caps] {
        if {[lsearch -exact $served $cap] < 0} {
            set names unknown
            if {[info exists others($cap)]} { set names $others($cap) }
            puts stderr "WARNING: detectron2/@VERSION@: GPU sm_[string map {. {}} $cap] on this node has no kernels in this build (it serves @FAMILIES@); CUDA ops will fail here with 'no kernel image'. Variants with code for it: $names."
        }
    }
}"""


def write_modulefiles(facts: EnvFacts, out: Path) -> Tuple[Path, Path]:
    """Write both modulefiles atomically (a reader never sees half a file)."""
    targets = ((out / "lua" / MODULE_NAME / f"{facts.version}.lua", render_lua(facts)),
               (out / "tcl" / MODULE_NAME / facts.version, render_tcl(facts)))
    for path, text in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return targets[0][0], targets[1][0]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, type=Path, help="installed environment (conda prefix)")
    parser.add_argument("--out", required=True, type=Path, help="modulefiles root (gets lua/ and tcl/)")
    parser.add_argument("--variant", help="build variant, when the build string does not tell it")
    args = parser.parse_args(argv)
    facts = collect(args.prefix, args.variant)
    lua, tcl = write_modulefiles(facts, args.out)
    print(f"wrote {lua}\nwrote {tcl}")
    for name in facts.dropped:
        print(f"note: the environment's activation sets {name}; the modules leave it alone", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
