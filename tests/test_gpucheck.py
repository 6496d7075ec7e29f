"""``make gpu-check`` and ``make gpu-bundle`` up to the device: profiles, refusal, bundle, plan, install, records."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lib import gpucheck as C
from lib.core import registry
from lib.pages import gpu_record as G
from lib.runtime.run import get_study, resolve_parameters

REPO = Path(__file__).resolve().parents[1]
STUDIES = ("nuclei", "perfusion", "pgnaa", "radiative")
#: Parameters that fix a study's model and input sizes: the gpu profile and its smoke run keep the paper's values.
MODEL_SIZE_KEYS = {
    "nuclei": ("size", "eval_size", "variant", "base_filters", "unet_filters", "crop", "data"),
    "perfusion": ("size", "width", "input_mode"),
    "pgnaa": ("irv2_width", "irv2_repeats", "bin_factor", "ch_lo", "ch_hi", "linear_path", "alloy_bin_factor",
              "nist_bin_factor", "full_counts", "nist_bin_kev"),
    "radiative": ("grid", "demo_size", "depth", "keras_bn", "bump_time", "bump_filters", "bump_hidden", "class_grid",
                  "class_time", "class_filters", "baseline_base", "solver_backend", "convergence_sizes"),
}
#: The training protocol besides loop lengths: the gpu profile keeps the paper's values (a smoke run may cut batches).
PROTOCOL_KEYS = {
    "nuclei": ("bn_momentum", "batch_size", "lr", "recipe_lr", "augment", "tta", "recipe_tta"),
    "perfusion": ("batch_size", "lr", "schedule", "balance_maps", "mAs"),
    "pgnaa": ("batch_size", "lr", "lr_linear", "k_train", "table2_models"),
    "radiative": ("batch_size", "lr", "standardise", "rotations", "bump_lr", "noise_levels"),
}


# --------------------------------------------------------------------------- the gpu profiles


@pytest.mark.parametrize("study", STUDIES)
def test_gpu_profile_validates_at_the_paper_model_and_input_sizes(study):
    st = get_study(study)
    gpu, info, _, name = resolve_parameters(st, "gpu")
    paper = resolve_parameters(st, "paper")[0]
    assert name == "gpu" and gpu["profile"] == "gpu"
    assert info.device == "gpu" and info.allows_synthetic_fallback("gpu") is False
    assert "TFLOP/s" in info.expected_runtime and "gpu_profile_cost.py" in info.description
    for key in MODEL_SIZE_KEYS[study] + PROTOCOL_KEYS[study]:
        assert gpu[key] == paper[key], f"{study}: gpu {key}={gpu[key]!r}, paper {paper[key]!r}"
    smoke = resolve_parameters(st, "gpu", overrides=info.smoke)[0]  # the smoke overrides validate too
    assert info.smoke and not set(info.smoke) & set(MODEL_SIZE_KEYS[study])
    assert {k: smoke[k] for k in MODEL_SIZE_KEYS[study]} == {k: paper[k] for k in MODEL_SIZE_KEYS[study]}
    assert C.training_work(study, gpu) < C.training_work(study, paper)
    if study == "perfusion":  # the U-Net's input: all 89 frames, in the profile and in its smoke run
        assert max(gpu["frame_counts"]) == max(smoke["frame_counts"]) == 89


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_gpu_profile_smoke_run_on_cpu(study, tmp_path):
    """``studies run STUDY --profile gpu --smoke`` on CPU: full model and input sizes, loops of one (minutes each)."""
    out = tmp_path / f"{study}-gpu-smoke"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "lib", "run", study, "--profile", "gpu", "--smoke", "--quiet",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=3 * 3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "ok" and prov["profile"] == "gpu" and prov["synthetic_fallback_allowed"] is False
    assert all(v == "real" for v in (prov.get("data_sources") or {}).values()), prov["data_sources"]


def test_nuclei_gpu_and_paper_profiles_run_the_report_protocol_exactly():
    """The report's protocol (seed L204-220, L344-395): U=32 at 256 px, Adam 1e-4, batch 8, 10 epochs, no augmentation."""
    for profile in ("gpu", "paper"):
        p = resolve_parameters(get_study("nuclei"), profile)[0]
        got = {k: p[k] for k in ("seed_protocol", "epochs", "size", "subset", "augment", "tta", "recalibrate_bn", "lr",
                                 "batch_size", "base_filters", "bn_momentum")}
        assert got == {"seed_protocol": True, "epochs": 10, "size": 256, "subset": [], "augment": False, "tta": False,
                       "recalibrate_bn": False, "lr": 1e-4, "batch_size": 8, "base_filters": 32,
                       "bn_momentum": 0.01}, profile


def test_the_four_gpu_profiles_are_sized_for_eight_minutes_together():
    total = 0.0
    for study in STUDIES:
        text = get_study(study).profile_info("gpu").expected_runtime
        m = re.match(r"([0-9.]+) min", text)
        assert m, text
        total += float(m.group(1))
    assert total <= 8.0


def test_training_work_counts_every_trained_network():
    p = resolve_parameters(get_study("perfusion"), "gpu")[0]
    base = C.training_work("perfusion", p)
    assert C.training_work("perfusion", {**p, "ablate_maxpool": False}) == pytest.approx(base * 3 / 4)
    assert C.training_work("perfusion", {**p, "epochs": 2 * p["epochs"]}) == pytest.approx(2 * base)
    assert C.training_work("unknown", p) is None
    assert C.training_work("perfusion", {}) is None


# --------------------------------------------------------------------------- refusal without CUDA


def test_make_gpu_check_refuses_in_one_line_without_cuda():
    # run as a user does, not as a sub-make of `make test` (whose MAKEFLAGS add "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    proc = subprocess.run(["bash", "-c", "make gpu-check"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert lines == ["gpu-check: no CUDA device here (torch.cuda.is_available() is False); run make gpu-check on "
                     "a machine with an NVIDIA GPU"]
    assert "Traceback" not in proc.stderr  # only make's own "Error 2" note
    assert not (REPO / "_runs" / "_gpu-check").exists() or not any((REPO / "_runs" / "_gpu-check").iterdir())


def test_run_check_without_cuda_returns_2_and_runs_nothing(tmp_path):
    lines: list[str] = []
    assert C.run_check(root=tmp_path, device=None, out=lines.append) == 2
    assert len(lines) == 1 and "no CUDA device" in lines[0]
    assert not (tmp_path / "results").exists()


def _mini_root(tmp_path: Path, study: str = "pgnaa") -> Path:
    root = tmp_path / "repo"
    (root / "book" / study).mkdir(parents=True)
    shutil.copy2(REPO / "book" / study / f"{study}.md", root / "book" / study / f"{study}.md")
    shutil.copy2(REPO / "book" / "results_reference.yaml", root / "book" / "results_reference.yaml")
    shutil.copytree(REPO / "parameters" / study, root / "parameters" / study)
    return root


def test_run_check_past_its_deadline_records_every_study_as_not_run(tmp_path):
    root = _mini_root(tmp_path)
    lines: list[str] = []
    code = C.run_check(root=root, device="Fake GPU", deadline_s=0, out=lines.append, benchmarks=True)
    assert code == 1
    rec = G.read_record(G.record_path(root, "pgnaa"))
    assert (rec["status"], rec["device"], rec["wall_s"], rec["metrics"]) == ("not_run", "Fake GPU", 0.0, {})
    assert any("pgnaa: not run" in line for line in lines)
    assert sum("benchmark" in line and "not run" in line for line in lines) == len(C._benchmarks(True))
    assert any(line.startswith("  pgnaa: unknown (not_run") for line in lines)


def test_deadline_follows_its_clock():
    now = [100.0]
    d = C.Deadline(60, clock=lambda: now[0])
    assert d.left() == 60
    now[0] = 170.0
    assert d.left() == -10


# --------------------------------------------------------------------------- records from a run folder


def test_make_record_takes_headline_metrics_status_epoch_time_and_estimate(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"expI_cnn_acc": 0.93, "expI_train_seconds": 12.0,
                                                  "generator_seconds": 1.0, "_data_sources": {"x": "real"}}))
    (run / "provenance.json").write_text(json.dumps({"status": "ok"}))
    st = get_study("pgnaa")
    gpu, paper = resolve_parameters(st, "gpu")[0], resolve_parameters(st, "paper")[0]
    rec = C.make_record("pgnaa", run, device="NVIDIA H100", status="failed", wall_s=100.0, root=REPO,
                        gpu_params=gpu, paper_params=paper, commit="abc", versions={"torch": "2.11"})
    assert rec["status"] == "ok"  # the run's provenance wins
    assert rec["metrics"] == {"expI_cnn_acc": 0.93}  # only the metrics the Results page sets beside the paper
    assert rec["epoch_s"] == pytest.approx(12.0 / gpu["epochs"])
    ratio = C.training_work("pgnaa", paper) / C.training_work("pgnaa", gpu)
    assert rec["paper_estimate_s"] == pytest.approx(100.0 * ratio, rel=1e-3)
    (run / "provenance.json").write_text(json.dumps({"status": "timeout"}))
    rec = C.make_record("pgnaa", run, device="NVIDIA H100", status="ok", wall_s=100.0, root=REPO,
                        gpu_params=gpu, paper_params=paper, commit="abc", versions={})
    assert rec["status"] == "timeout" and rec["paper_estimate_s"] is None


# --------------------------------------------------------------------------- wheels: lock, closure, install


def test_read_lock_normalises_names_and_refuses_other_lines(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nPyYAML==6.0.3\njupyter_client==8.10.0  # comment\n\n")
    assert C.read_lock(lock) == {"pyyaml": "6.0.3", "jupyter-client": "8.10.0"}
    lock.write_text("numpy>=2\n")
    with pytest.raises(C.BundleError, match="line 1: 'numpy>=2' is not a pin"):
        C.read_lock(lock)


def test_dependency_closure_follows_markers_for_python_312_and_stops_at_the_device():
    meta = {
        "papermill": ["nbclient>=0.2", "PyYAML", "aiohttp>=3.9; python_version == '3.12'",
                      "boto3; extra == 's3'", "colorama; sys_platform == 'win32'", "numpy"],
        "nbclient": ["jupyter_client"], "jupyter-client": [], "pyyaml": [], "aiohttp": None,
    }
    lock = {"papermill": "2.7.0", "nbclient": "0.11.0", "pyyaml": "6.0.3", "aiohttp": "3.13", "jupyter-client": "8",
            "numpy": "2.4.6"}
    out = C.dependency_closure(["papermill"], lock=lock, exclude=["numpy"], requires=meta.get)
    assert out == {"aiohttp": "3.13", "jupyter-client": "8", "nbclient": "0.11.0", "papermill": "2.7.0",
                   "pyyaml": "6.0.3"}
    assert "aiohttp" not in C.dependency_closure(["papermill"], lock=lock, exclude=["numpy"], requires=meta.get,
                                                 python_version="3.11")
    assert C.dependency_closure(["papermill"], lock=lock, exclude=["numpy"], leaves=["nbclient"],
                                requires=meta.get) == {"aiohttp": "3.13", "nbclient": "0.11.0", "papermill": "2.7.0",
                                                       "pyyaml": "6.0.3"}
    with pytest.raises(C.BundleError, match="numpy is needed on the GPU machine but is not pinned"):
        C.dependency_closure(["papermill"], lock={k: v for k, v in lock.items() if k != "numpy"},
                             requires=meta.get)


def test_the_real_closure_has_the_runner_and_not_what_the_device_has():
    pins = C.runner_pins(REPO / "requirements" / "lock.txt")
    for name in ("papermill", "jupytext", "nbclient", "nbformat", "ipykernel", "myst-nb", "pyzmq", "pydicom",
                 "simpleitk", "docutils"):
        assert name in pins
    assert not set(pins) & {"torch", "numpy", "scipy", "matplotlib", "pandas"}
    assert not set(pins) & {"sphinx", "babel", "sqlalchemy", "debugpy", "jedi", "aiohttp"}  # myst-nb is a leaf


def test_myst_nb_glue_imports_without_the_sphinx_stack(tmp_path):
    """Why myst-nb is bundled as a leaf: the kernel's ``glue`` needs none of its Sphinx stack (docutils is a root)."""
    code = (
        "import sys\n"
        "for name in ('sphinx', 'babel', 'sqlalchemy', 'jupyter_cache', 'myst_parser', 'markdown_it',\n"
        "             'debugpy', 'jedi', 'parso'):\n"
        "    sys.modules[name] = None  # as if absent: import raises ImportError, find_spec gives None\n"
        "from myst_nb import glue\n"
        "import ipykernel.ipkernel, IPython.core.completer\n"
        "glue('x', 1, display=False)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def _fake_wheel(path: Path, module: str, *, data: bool) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        if data:
            zf.writestr(f"{module}-1.0.data/purelib/{module}/__init__.py", "VALUE = 'purelib'\n")
            zf.writestr(f"{module}-1.0.data/scripts/{module}", "#!/bin/sh\n")
        else:
            zf.writestr(f"{module}/__init__.py", "VALUE = 'plain'\n")
        zf.writestr(f"{module}-1.0.dist-info/METADATA", f"Name: {module}\nVersion: 1.0\n")
    return path


def _clean_python(tmp_path: Path) -> Path:
    venv = tmp_path / "clean-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def test_install_wheels_makes_them_importable_in_a_clean_venv(tmp_path):
    wheels = [_fake_wheel(tmp_path / "plainmod-1.0-py3-none-any.whl", "plainmod", data=False),
              _fake_wheel(tmp_path / "datamod-1.0-py3-none-any.whl", "datamod", data=True)]
    site = tmp_path / "site"
    assert C.install_wheels(wheels, site) == [w.name for w in wheels]
    assert not (site / "datamod-1.0.data").exists()
    python = _clean_python(tmp_path)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(site)}
    proc = subprocess.run([str(python), "-c", "import plainmod, datamod; print(plainmod.VALUE, datamod.VALUE)"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "plain purelib", proc.stderr


def test_install_wheels_refuses_a_corrupt_or_unsafe_wheel(tmp_path):
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(C.BundleError, match="bad-1.0-py3-none-any.whl: not a usable wheel"):
        C.install_wheels([bad], tmp_path / "site")
    evil = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.py", "")
    with pytest.raises(C.BundleError, match="unsafe path"):
        C.install_wheels([evil], tmp_path / "site")
    assert not (tmp_path / "escape.py").exists()


@pytest.mark.slow
def test_downloaded_pure_python_wheels_install_and_import_in_a_clean_venv(tmp_path):
    """Real wheels from the index (network): the pure-python part of the runner's closure imports."""
    pins = C.dependency_closure(["nbformat", "jupytext"], lock=C.read_lock(REPO / "requirements" / "lock.txt"),
                                exclude=C.DEVICE_PROVIDES | {"rpds-py", "pyyaml"})
    wheels = C.download_wheels(pins, tmp_path / "wheels")
    assert all(w.name.endswith("-none-any.whl") for w in wheels)
    site = tmp_path / "site"
    C.install_wheels(wheels, site)
    python = _clean_python(tmp_path)
    proc = subprocess.run([str(python), "-c", "import fastjsonschema, mdit_py_plugins, markdown_it; print('ok')"],
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site)}, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr


# --------------------------------------------------------------------------- planning the calls


def test_plan_calls_packs_largest_first_under_the_limit():
    mib = 2**20
    items = [C.BundleItem("data/nuclei", 51 * mib), C.BundleItem("data/pgnaa", 25 * mib),
             C.BundleItem("wheels/part1", 28 * mib), C.BundleItem("data/rt", 3 * mib),
             C.BundleItem("bundle.json", 100_000)]
    calls = C.plan_calls(items, tree=2 * mib)
    assert [[i.path for i in c] for c in calls] == [["data/nuclei", "data/rt", "bundle.json"],
                                                   ["wheels/part1", "data/pgnaa"]]
    for call in calls:
        assert 2 * mib + sum(i.size for i in call) <= C.CALL_LIMIT_BYTES - C.CALL_MARGIN_BYTES
    assert sorted(i.path for c in calls for i in c) == sorted(i.path for i in items)
    many = [C.BundleItem(f"p{k}", 10) for k in range(10)]
    assert [len(c) for c in C.plan_calls(many, tree=0, max_paths=8)] == [8, 2]


def test_plan_calls_refuses_an_item_that_fits_no_call():
    with pytest.raises(C.BundleError, match=r"data/huge is 61\.0 MiB; with the working tree \(2\.0 MiB\)"):
        C.plan_calls([C.BundleItem("data/huge", 61 * 2**20)], tree=2 * 2**20)


# --------------------------------------------------------------------------- the bundle's data


@pytest.fixture
def data_bundle(tmp_path):
    if registry.mirror_dir() is None or not (registry.mirror_dir() / "perfusion" / "unitobrain-samples").is_dir():
        pytest.skip("no data mirror with unitobrain-samples (STUDIES_DATA_MIRROR)")
    dest = tmp_path / "bundle"
    lines: list[str] = []
    calls = C.build_bundle(dest, root=REPO, download=False, datasets=["rt-reference", "unitobrain-samples"],
                           out=lines.append)
    return dest, calls, lines


@pytest.fixture
def unpacked_bundle(data_bundle):
    """The data bundle with the dataset as a folder (unpacked if the build packed it) and its manifest rewritten."""
    dest = data_bundle[0]
    if (dest / "archives").is_dir():
        C.unpack_archives(dest)
        shutil.rmtree(dest / "archives")
    C.write_bundle_manifest(dest)
    return data_bundle


def test_data_bundle_builds_verifies_and_plans_under_the_limit(data_bundle):
    dest, calls, lines = data_bundle
    assert C.verify_bundle(dest) == len(json.loads((dest / "bundle.json").read_text())["files"])
    summary = [k for k, line in enumerate(lines) if line.startswith(f"gpu-bundle: {dest} (")]
    assert len(calls) == 1 and len(summary) == 1 and "1 call(s) of at most 64 MiB" in lines[summary[0]]
    call = lines[summary[0] + 1]
    assert call.startswith("  call 1: ") and "'make gpu-check'" in call
    archives = json.loads((dest / "bundle.json").read_text())["archives"]
    data = (".gpu-bundle/archives/unitobrain-samples.tar.xz" if archives == {
        "archives/unitobrain-samples.tar.xz": "perfusion/unitobrain-samples"} else
        ".gpu-bundle/data/perfusion/unitobrain-samples")  # packed when xz saves a fifth or more
    assert {i.path for i in calls[0]} == {data, ".gpu-bundle/bundle.json"}
    assert any("rt-reference ships with the working tree" in line for line in lines)  # not carried twice
    assert not (dest / "data" / "rt").exists()


def test_verify_bundle_names_a_corrupt_or_missing_file(unpacked_bundle):
    dest = unpacked_bundle[0]
    victim = dest / "data" / "perfusion" / "unitobrain-samples" / "IM-0001-0001-0001.dcm"
    data = bytearray(victim.read_bytes())
    data[200] ^= 0xFF  # one byte flipped, same size
    victim.write_bytes(bytes(data))
    (dest / "data" / "perfusion" / "unitobrain-samples" / "NLR_CBV00003.dcm").unlink()
    with pytest.raises(C.BundleError, match="2 file\\(s\\) of the bundle are missing or differ") as err:
        C.verify_bundle(dest)
    assert "unitobrain-samples/IM-0001-0001-0001.dcm: SHA-256" in str(err.value)
    assert "NLR_CBV00003.dcm: missing" in str(err.value)
    (dest / "bundle.json").unlink()
    with pytest.raises(C.BundleError, match="bundle.json is missing"):
        C.verify_bundle(dest)


def test_the_registry_finds_the_carried_data(unpacked_bundle, tmp_path, monkeypatch):
    dest = unpacked_bundle[0]
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.setenv(registry.MIRROR_ENV, str(dest / "data"))
    assert registry.fetch("unitobrain-samples", download=False) == dest / "data" / "perfusion" / "unitobrain-samples"


def test_pack_then_unpack_restores_a_verified_dataset(unpacked_bundle):
    dest = unpacked_bundle[0]
    packed = C.pack_datasets(dest, min_saving=-1.0)  # pack whatever the saving
    assert packed == {"archives/unitobrain-samples.tar.xz": "perfusion/unitobrain-samples"}
    assert not (dest / "data" / "perfusion" / "unitobrain-samples").exists()
    C.write_bundle_manifest(dest, archives=packed)
    meta = json.loads((dest / "bundle.json").read_text())
    assert meta["archives"] == packed and "archives/unitobrain-samples.tar.xz" in meta["files"]
    assert {i.path for i in C._bundle_items(dest)} == {".gpu-bundle/archives/unitobrain-samples.tar.xz",
                                                       ".gpu-bundle/bundle.json"}
    C.verify_bundle(dest)
    assert C.unpack_archives(dest) == ["perfusion/unitobrain-samples"]
    registry.verify("unitobrain-samples", dest / "data" / "perfusion" / "unitobrain-samples")


def test_unpack_refuses_a_corrupt_archive(unpacked_bundle):
    dest = unpacked_bundle[0]
    packed = C.pack_datasets(dest, min_saving=-1.0)
    C.write_bundle_manifest(dest, archives=packed)
    archive = dest / "archives" / "unitobrain-samples.tar.xz"
    archive.write_bytes(archive.read_bytes()[:1000])
    with pytest.raises(C.BundleError, match="unitobrain-samples.tar.xz: cannot unpack"):
        C.unpack_archives(dest)
    with pytest.raises(C.BundleError, match="archives/unitobrain-samples.tar.xz: SHA-256"):
        C.verify_bundle(dest)


def test_pack_keeps_a_folder_that_does_not_shrink(unpacked_bundle):
    dest = unpacked_bundle[0]
    assert C.pack_datasets(dest, min_saving=0.99) == {}
    assert (dest / "data" / "perfusion" / "unitobrain-samples").is_dir() and not (dest / "archives").exists()


def _python312() -> str | None:
    pyenv = Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python3.12"
    for cand in (shutil.which("python3.12"), str(pyenv)):
        if cand and Path(cand).is_file():
            proc = subprocess.run([cand, "--version"], capture_output=True, text=True)
            if proc.returncode == 0 and proc.stdout.startswith("Python 3.12"):
                return cand
    return None


@pytest.mark.slow
def test_the_built_bundle_runs_a_notebook_with_papermill_in_a_clean_python_312(tmp_path):
    """The real bundle (make gpu-bundle first): its wheels, unpacked without pip into a bare CPython 3.12, run
    papermill on a notebook whose kernel imports what the chapters need from the bundle."""
    bundle = REPO / C.BUNDLE_DIR
    py312 = _python312()
    if not (bundle / "bundle.json").is_file() or py312 is None:
        pytest.skip("needs a built bundle (make gpu-bundle) and a CPython 3.12 interpreter")
    C.verify_bundle(bundle)
    calls = C.plan_calls(C._bundle_items(bundle), tree=C.tree_bytes(REPO))
    assert len(calls) <= 2
    site = tmp_path / "site"
    C.install_wheels(sorted((bundle / "wheels").rglob("*.whl")), site)
    venv = tmp_path / "bare312"
    subprocess.run([py312, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None,
                     "outputs": [], "source": "x = 1"},
                    {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": "import yaml, pydicom, SimpleITK, jupytext, nbclient, zmq\n"
                               "from myst_nb import glue\nglue('x', x, display=False)\nprint('kernel ok', x)"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "in.ipynb").write_text(json.dumps(nb))
    device = tmp_path / "device"  # what the GPU machine has beside torch and the bundle: these pure-python packages
    device.mkdir()
    import dateutil
    import packaging
    import typing_extensions

    for mod in (dateutil, packaging, typing_extensions):
        src = Path(mod.__file__)
        if src.name == "__init__.py":
            shutil.copytree(src.parent, device / src.parent.name)
        else:
            shutil.copy2(src, device / src.name)
    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": f"{site}:{device}", "HOME": str(tmp_path)}
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "papermill", str(tmp_path / "in.ipynb"),
                           str(tmp_path / "out.ipynb"), "-p", "x", "7", "-k", "python3", "--log-output"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kernel ok 7" in (tmp_path / "out.ipynb").read_text()


def test_git_keeps_the_records_and_ignores_the_bundle():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 0

    assert not ignored("results/gpu/nuclei.json")
    assert not ignored("results/gpu/benchmarks/gpu_profile_cost.txt")
    assert ignored("results/other/run.json") and ignored("results/gpu/notes.txt")
    assert ignored(".gpu-bundle/wheels/part1/x.whl") and ignored("_runs/_gpu-check/nuclei/metrics.json")


def test_prepare_environment_verifies_unpacks_installs_and_points_the_registry(unpacked_bundle, tmp_path,
                                                                                monkeypatch):
    dest = unpacked_bundle[0]
    packed = C.pack_datasets(dest, min_saving=-1.0)
    (dest / "wheels" / "part1").mkdir(parents=True)
    _fake_wheel(dest / "wheels" / "part1" / "zzrunnermod-1.0-py3-none-any.whl", "zzrunnermod", data=False)
    C.write_bundle_manifest(dest, archives=packed)
    monkeypatch.setattr(sys, "path", list(sys.path))
    env = {"PYTHONPATH": "/elsewhere"}
    lines: list[str] = []
    C._prepare_environment(tmp_path, dest, env, lines.append, needed=("zzrunnermod", "json"))
    assert env["STUDIES_DATA_MIRROR"] == str((dest / "data").resolve())
    assert env["PYTHONPATH"] == f"{(dest / 'site').resolve()}{os.pathsep}/elsewhere"
    assert sys.path[0] == str((dest / "site").resolve())
    import zzrunnermod

    assert zzrunnermod.VALUE == "plain"
    sys.modules.pop("zzrunnermod")
    assert "unpacked and verified perfusion/unitobrain-samples" in lines[0]
    assert lines[1] == f"gpu-check: installed 1 wheels into {dest / 'site'}"
    registry.verify("unitobrain-samples", dest / "data" / "perfusion" / "unitobrain-samples")
    shutil.rmtree(dest / "wheels")
    with pytest.raises(C.BundleError, match="zzrunnermod-1.0-py3-none-any.whl: missing"):  # a call not carried
        C._prepare_environment(tmp_path, dest, {}, lines.append, needed=("zzrunnermod_absent",))
    C.write_bundle_manifest(dest, archives=packed)
    with pytest.raises(C.BundleError, match="holds no wheels"):
        C._prepare_environment(tmp_path, dest, {}, lines.append, needed=("zzrunnermod_absent",))
