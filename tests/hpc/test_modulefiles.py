"""Generated modulefiles, loaded with the real Lmod and Environment Modules from Debian
(scripts/hpc/install_module_systems.sh installs both)."""
import importlib.util
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LMOD_INIT = Path("/opt/lmod-root/usr/share/lmod/lmod/init/bash")
TCL_INIT = Path("/usr/share/modules/init/bash")

_spec = importlib.util.spec_from_file_location("modulefiles", REPO / "scripts" / "hpc" / "modulefiles.py")
modulefiles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(modulefiles)


def _record(prefix: Path, name: str, version: str, build: str) -> None:
    meta = prefix / "conda-meta"
    meta.mkdir(exist_ok=True)
    (meta / f"{name}-{version}-{build}.json").write_text(
        json.dumps({"name": name, "version": version, "build": build, "files": []}))


def make_env(root: Path, variant: str = "cu117") -> Path:
    """A python environment shaped like an installed conda env of ours: its own
    interpreter that imports detectron2, conda-meta records and activate.d scripts."""
    prefix = root / f"detectron2-{variant}"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(prefix)
    site = next(prefix.glob("lib/python*/site-packages"))
    (site / "detectron2-src.pth").write_text(str(REPO / "src") + "\n")
    _record(prefix, "detectron2", "0.7.0", f"{variant}_sm80sm86ptx_py311h1234567_0")
    _record(prefix, "python", "3.11.7", "h4a1a5d6_0_cpython")
    _record(prefix, "pytorch", "2.0.1", "py3.11_cuda11.7_cudnn8.5.0_0")
    _record(prefix, "pytorch-cuda", "11.7", "h778d358_5")
    activate = prefix / "etc" / "conda" / "activate.d"
    activate.mkdir(parents=True)
    (activate / "gdal.sh").write_text('export GDAL_DATA="$CONDA_PREFIX/share/gdal"\n')
    (activate / "xml.sh").write_text('export XML_CATALOG_FILES="file://$CONDA_PREFIX/etc/xml/catalog${XML_CATALOG_FILES:+:$XML_CATALOG_FILES}"\n'
                                     'export MANPATH="$CONDA_PREFIX/share/man:${MANPATH:-}"\n')
    (activate / "bad.sh").write_text('export LD_LIBRARY_PATH="$CONDA_PREFIX/lib:${LD_LIBRARY_PATH:-}"\n')
    return prefix


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("hpc")
    out = root / "modulefiles"
    envs = {}
    for variant in ("cu117", "cu118"):
        prefix = make_env(root, variant)
        assert modulefiles.main(["--prefix", str(prefix), "--out", str(out)]) == 0
        envs[variant] = prefix
    return out, envs


def shell(script: str, extra_env=None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "TERM": "dumb"}
    env.update(extra_env or {})
    return subprocess.run(["bash", "-lc", script], capture_output=True, text=True, env=env, timeout=120)


SYSTEMS = {
    "lmod": (LMOD_INIT, "lua"),
    "environment-modules": (TCL_INIT, "tcl"),
}


def _init(system: str) -> str:
    init, _ = SYSTEMS[system]
    assert init.exists(), f"{init} missing: run scripts/hpc/install_module_systems.sh"
    return f"source {init}"


def test_files_carry_versions_archs_and_no_ld_library_path(generated):
    out, envs = generated
    lua = (out / "lua" / "detectron2" / "0.7.0-cu117.lua").read_text()
    tcl = (out / "tcl" / "detectron2" / "0.7.0-cu117").read_text()
    for text in (lua, tcl):
        assert "pytorch: 2.0.1 py3.11_cuda11.7_cudnn8.5.0_0" in text
        assert "GPU architectures: 8.0;8.6+PTX" in text
        assert "515.43.04" in text  # CUDA 11.7's minimum driver
        assert "not set: LD_LIBRARY_PATH" in text
        assert 'setenv("LD_LIBRARY_PATH' not in text and "setenv LD_LIBRARY_PATH" not in text
    assert 'conflict("detectron2")' in lua and "conflict detectron2" in tcl
    from detectron2.utils.variants import get_variant

    assert get_variant("cu118").arch_list in (out / "lua" / "detectron2" / "0.7.0-cu118.lua").read_text()


def _user_env(path: Path) -> dict:
    """The variables a user sees, minus the module systems' own bookkeeping; PATH-like
    values de-duplicated (Lmod drops duplicate entries the login profile may have made)."""
    bookkeeping = ("_", "SHLVL", "OLDPWD", "LOADEDMODULES", "_LMFILES_", "MODULEPATH", "MODULEPATH_modshare",
                   "LOADEDMODULES_modshare", "_LMFILES__modshare", "MODULES_", "__LMOD", "_ModuleTable", "LMOD")
    env = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if not sep or name.startswith(bookkeeping):
            continue
        if ":" in value and name.endswith("PATH"):
            value = ":".join(dict.fromkeys(p for p in value.split(":") if p))
        env[name] = value
    return env


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_load_sets_activation_and_unload_restores(generated, system, tmp_path):
    out, envs = generated
    tmp = tmp_path
    prefix = envs["cu117"]
    _, kind = SYSTEMS[system]
    script = f"""{_init(system)}
env > {tmp}/before
module use {out / kind}
module load detectron2/0.7.0-cu117 || exit 3
echo "CONDA_PREFIX=$CONDA_PREFIX"
echo "GDAL_DATA=$GDAL_DATA"
echo "XML=$XML_CATALOG_FILES"
echo "LDLP=${{LD_LIBRARY_PATH:-unset}}"
echo "PYTHON=$(command -v python)"
python -c 'import detectron2, sys; print("IMPORT", detectron2.__version__, sys.prefix)'
module unload detectron2
env > {tmp}/after
"""
    result = shell(script, {"DETECTRON2_DRIVER_VERSION": "535.104.05"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout
    assert f"CONDA_PREFIX={prefix}" in lines
    assert f"GDAL_DATA={prefix}/share/gdal" in lines
    assert f"XML=file://{prefix}/etc/xml/catalog" in lines
    assert "LDLP=unset" in lines
    assert f"PYTHON={prefix}/bin/python" in lines
    assert f"IMPORT 0.7.0 {prefix}" in lines
    assert _user_env(tmp / "after") == _user_env(tmp / "before")
    assert "older than" not in result.stderr


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_driver_too_old_warns_at_load(generated, system):
    out, _ = generated
    _, kind = SYSTEMS[system]
    script = f"{_init(system)}\nmodule use {out / kind}\nmodule load detectron2/0.7.0-cu117\necho loaded=$CONDA_DEFAULT_ENV\n"
    result = shell(script, {"DETECTRON2_DRIVER_VERSION": "470.57.02"})
    message = " ".join(result.stderr.split())  # Lmod wraps long warnings
    assert "NVIDIA driver 470.57.02 on this node is older than 515.43.04" in message
    assert "loaded=detectron2-cu117" in result.stdout  # a warning, not a refusal


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_two_detectron2_modules_conflict(generated, system):
    out, _ = generated
    _, kind = SYSTEMS[system]
    script = (f"{_init(system)}\nmodule use {out / kind}\nmodule load detectron2/0.7.0-cu117\n"
              "module load detectron2/0.7.0-cu118\necho PREFIX=$CONDA_PREFIX\n")
    result = shell(script, {"DETECTRON2_DRIVER_VERSION": "535.104.05"})
    # Lmod swaps or refuses, Environment Modules refuses: never both environments at once.
    assert result.stdout.count("PREFIX=") == 1
    prefix_line = [l for l in result.stdout.splitlines() if l.startswith("PREFIX=")][0]
    assert prefix_line.endswith(("detectron2-cu117", "detectron2-cu118"))
    if system == "environment-modules":
        assert "conflict" in result.stderr.lower()


def test_unknown_prefix_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no detectron2 package recorded"):
        modulefiles.collect(tmp_path)


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_gpu_without_kernels_warns_at_load(generated, system):
    out, _ = generated
    _, kind = SYSTEMS[system]
    script = f"{_init(system)}\nmodule use {out / kind}\nmodule load detectron2/0.7.0-cu117\necho loaded=$CONDA_DEFAULT_ENV\n"
    base = {"DETECTRON2_DRIVER_VERSION": "535.104.05"}
    # An A100 beside an H100: cu117's pytorch has no sm_90, so the H100 gets the warning.
    result = shell(script, dict(base, DETECTRON2_GPU_CAPABILITIES="8.0,9.0"))
    message = " ".join(result.stderr.split())
    assert "GPU sm_90 on this node has no kernels in this build (it serves Ampere, Ada (sm_80-sm_89))" in message
    assert "Variants with code for it: cu118, cu129, cu130." in message and "sm_80 on" not in message
    assert "loaded=detectron2-cu117" in result.stdout
    ok = shell(script, dict(base, DETECTRON2_GPU_CAPABILITIES="8.6"))
    assert "no kernels" not in ok.stderr and "loaded=detectron2-cu117" in ok.stdout


def test_gpu_check_uses_the_variant_table(generated):
    from detectron2.utils.variants import get_variant

    out, envs = generated
    facts = modulefiles.collect(envs["cu118"])
    assert facts.gpu_caps == get_variant("cu118").gpu_capabilities and "9.0" in facts.gpu_caps
    assert facts.others["10.0"] == "cu129, cu130" and facts.others["3.7"] == "none"
