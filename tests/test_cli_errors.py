"""Every bad-input probe of the runner reviews (issues 11 and 21), driven through ``python -m lib`` / ``cli.main``.

Each case checks the exit code, that the message is one clear paragraph naming the problem and
its fix (never a traceback), and what the run folder records.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import nbformat
import pytest

from lib.cli import main
from lib.core import registry
from lib.runtime.record import RunRecord, reuse_problem
from lib.runtime.run import get_study, run_key


@pytest.fixture
def env_root(minibook, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIES_ROOT", str(minibook))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "user.cache"))  # a dot early in the reason
    return minibook


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" not in err
    return err


def _mirror_copy(tmp_path: Path) -> Path:
    """A private mirror holding a copy of unitobrain-samples (3 small files) from the shared mirror."""
    shared = registry.mirror_dir()
    ds = registry.get("unitobrain-samples")
    if shared is None or not (shared / ds.mirror_subdir).is_dir():
        pytest.skip("no local data mirror (set STUDIES_DATA_MIRROR)")
    mirror = tmp_path / "mirror"
    shutil.copytree(shared / ds.mirror_subdir, mirror / ds.mirror_subdir)
    return mirror


def _flip_byte(path: Path, at: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------- data integrity


def test_corrupt_mirror_file_fails_the_run_naming_file_hashes_and_fix(env_root, tmp_path, monkeypatch, capsys):
    mirror = _mirror_copy(tmp_path)
    bad = mirror / "perfusion/unitobrain-samples/NLR_CBV00003.dcm"
    _flip_byte(bad)
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    out = tmp_path / "run"
    assert main(["run", "demo", "--profile", "ci", "--set", "dataset=unitobrain-samples", "--quiet",
                 "--out", str(out)]) == 1
    err = _err(capsys)
    assert "ChecksumError" in err and str(bad) in err
    assert err.count("registered") >= 1 and "SHA-256" in err
    assert "restore the mirror" in err  # no public source: where the data come from
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "failed"
    assert prov["data_sources"]["unitobrain-samples"].startswith("error (")
    assert json.loads((out / "metrics.json").read_text())["_data_sources"]["unitobrain-samples"].startswith("error")
    assert not (out / "run.key").exists()


def test_partial_dataset_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    mirror = _mirror_copy(tmp_path)
    (mirror / "perfusion/unitobrain-samples/Registered00001.dcm").unlink()
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "c"))
    with pytest.raises(registry.ChecksumError, match=r"(?s)1 missing file\(s\) of 3.*Registered00001\.dcm: missing"):
        registry.fetch("unitobrain-samples")


def test_absent_dataset_falls_back_and_records_the_whole_reason(env_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    out = tmp_path / "run"
    assert main(["run", "demo", "--profile", "ci", "--set", "dataset=unitobrain-samples", "--quiet",
                 "--out", str(out)]) == 0
    assert "data unitobrain-samples: synthetic (" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    prov = json.loads((out / "provenance.json").read_text())
    source = prov["data_sources"]["unitobrain-samples"]
    assert metrics["_data_sources"]["unitobrain-samples"] == source and metrics["data_real"] == 0
    # the chapter passed the reason cut at its first dot ("user.cache"); the record and the box have all of it
    assert source.startswith("synthetic (") and f"{registry.MIRROR_ENV} is not set" in source
    nb = nbformat.read(out / "demo.ipynb", as_version=4)
    boxes = [o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
             if "text/plain" in o.get("data", {}) and "[WARNING] Real data unavailable" in o["data"]["text/plain"]]
    assert boxes and f"{registry.MIRROR_ENV} is not set" in boxes[0] and "no public download" in boxes[0]


def test_a_paper_like_profile_refuses_the_synthetic_fallback(env_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    strict = tmp_path / "strict.yaml"
    strict.write_text("_profile: {synthetic_fallback: false}\nprofile: strict\ndataset: unitobrain-samples\n")
    assert main(["run", "demo", "--params", str(strict), "--quiet", "--out", str(tmp_path / "s")]) == 1
    err = _err(capsys)
    assert "SyntheticFallbackError" in err and "does not allow a synthetic fallback" in err
    assert "python -m lib data fetch unitobrain-samples" in err


def test_a_relative_mirror_is_read_from_the_callers_folder(env_root, tmp_path, monkeypatch, capsys):
    mirror = _mirror_copy(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(registry.MIRROR_ENV, mirror.name)  # relative to here, not to the chapter's folder
    out = tmp_path / "run"
    assert main(["run", "demo", "--profile", "ci", "--set", "dataset=unitobrain-samples", "--quiet",
                 "--out", str(out)]) == 0
    assert "data unitobrain-samples: real" in capsys.readouterr().out
    assert json.loads((out / "provenance.json").read_text())["data_sources"] == {"unitobrain-samples": "real"}
    assert json.loads((out / "metrics.json").read_text())["data_real"] == 1
    assert os.environ[registry.MIRROR_ENV] == mirror.name  # the runner's own environment is restored


def test_verify_reports_every_bad_file(tmp_path, monkeypatch, capsys):
    mirror = _mirror_copy(tmp_path)
    root = mirror / "perfusion/unitobrain-samples"
    _flip_byte(root / "NLR_CBV00003.dcm")
    (root / "IM-0001-0001-0001.dcm").write_bytes(b"short")
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "c"))
    assert main(["data", "verify", "unitobrain-samples"]) == 1
    err = _err(capsys)
    assert "2 bad file(s)" in err and "NLR_CBV00003.dcm: SHA-256" in err
    assert "IM-0001-0001-0001.dcm: size 5 bytes, registered 203490 bytes" in err


def test_fetch_of_a_dataset_without_public_source_says_where_it_comes_from(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "c"))
    assert main(["data", "fetch", "rt-reference"]) == 1
    err = _err(capsys)
    assert "no public source" in err and "inverse-problem-vnet" in err and "cmake" in err
    assert main(["data", "fetch", "unitobrain-samples"]) == 1
    err = _err(capsys)
    assert "no public source" in err and "IEEE DataPort" in err


def test_manifest_paths_must_stay_inside_the_dataset(tmp_path):
    for bad in ("../x.csv", "/etc/passwd", "a/../../b", "C:\\x", "a\\b"):
        manifest = tmp_path / "m.csv"
        manifest.write_text(f"path,sha256,size,url\n{bad},{'0' * 64},1,\n")
        with pytest.raises(ValueError, match="must be relative and inside the dataset"):
            registry.read_manifest(manifest)


# ----------------------------------------------------------------------------- run identity


def test_a_run_with_set_never_lands_in_the_profile_folder(env_root, capsys):
    assert main(["run", "demo", "--profile", "ci", "--set", "n=99", "--quiet"]) == 0
    runs = env_root / "_runs" / "demo"
    assert not (runs / "ci").exists()
    (own,) = [p for p in runs.iterdir() if p.name.startswith("ci-set-")]
    prov = json.loads((own / "provenance.json").read_text())
    assert prov["overrides"] == {"n": 99}
    st = get_study("demo", env_root)
    # the book asks for the profile as it is: the --set run's key differs, so it is never reused
    assert reuse_problem(RunRecord.read(own), run_key(st, st.parameter_dir / "ci.yaml")).startswith("stale")
    assert prov["run_key"] == run_key(st, st.parameter_dir / "ci.yaml", {"n": 99})
    # asking for the profile's own folder with --set is refused before anything runs
    assert main(["run", "demo", "--profile", "ci", "--set", "n=99", "--quiet", "--out", str(runs / "ci")]) == 2
    assert "holds only runs of the unchanged profile" in _err(capsys)
    assert not (runs / "ci").exists()


def test_failed_rerun_keeps_the_finished_run_and_names_the_right_line(env_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(out)]) == 0
    assert (out / "figures" / "demo_line.png").is_file() and RunRecord.read(out).status == "ok"
    key = RunRecord.read(out).run_key
    capsys.readouterr()
    assert main(["run", "demo", "--profile", "ci", "--set", "fail=true", "--quiet", "--out", str(out)]) == 1
    err = _err(capsys)
    # cells 2 and 3 both start with `import numpy as np`: the line is cell 3's, not the first match
    lines = (env_root / "book/demo/demo.md").read_text().splitlines()
    starts = [i + 1 for i, line in enumerate(lines) if line == "import numpy as np"]
    assert len(starts) == 2
    assert f"failed in code cell 3 (book/demo/demo.md line {starts[1]})" in err
    # the failed run is kept inside the finished one, which stays in place and reusable
    partial = out / ".partial-failed"
    assert f"kept at {partial / 'demo.ipynb'}; the finished run in {out} is untouched" in err
    assert json.loads((partial / "provenance.json").read_text())["status"] == "failed"
    assert reuse_problem(RunRecord.read(partial), key).startswith("failed in code cell 3")
    assert RunRecord.read(out).run_key == key and (out / "figures" / "demo_line.png").is_file()
    assert json.loads((out / "provenance.json").read_text())["status"] == "ok"
    assert reuse_problem(RunRecord.read(out), key) is None  # the key it was recorded with (lib/ may change)
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temp folder or lock left
    # a later finished run replaces the folder whole, the kept partial run with it
    assert main(["run", "demo", "--profile", "ci", "--set", "n=4", "--quiet", "--out", str(out)]) == 0
    assert not partial.exists() and json.loads((out / "provenance.json").read_text())["overrides"] == {"n": 4}
    # a failure into a folder without a finished run simply replaces it
    (out / "provenance.json").write_text(json.dumps({"study": "demo", "status": "interrupted"}))
    assert main(["run", "demo", "--profile", "ci", "--set", "fail=true", "--quiet", "--out", str(out)]) == 1
    assert f"kept at {out / 'demo.ipynb'}" in _err(capsys)
    assert json.loads((out / "provenance.json").read_text())["status"] == "failed" and not partial.exists()


def test_timeout_names_the_cell_and_is_recorded(env_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "demo", "--profile", "ci", "--set", "sleep_s=60", "--timeout", "3", "--quiet",
                 "--out", str(out)]) == 1
    err = _err(capsys)
    lines = (env_root / "book/demo/demo.md").read_text().splitlines()
    line = lines.index("import time") + 1
    assert f"timed out in code cell 4 (book/demo/demo.md line {line})" in err and "--timeout" in err
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "timeout" and "code cell 4" in prov["failed_cell"]
    assert json.loads((out / "metrics.json").read_text())["total"] == 10.0


def test_a_second_run_into_a_locked_folder_is_refused(env_root, tmp_path, capsys):
    out = tmp_path / "run"
    lock = tmp_path / ".run.lock"
    import platform

    lock.write_text(json.dumps({"pid": os.getpid(), "host": platform.node(), "started": "now"}))
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(out)]) == 2
    err = _err(capsys)
    assert f"another run (pid {os.getpid()}" in err and str(out) in err and "another --out" in err
    assert not out.exists()
    # a lock left by a process that no longer exists is taken over
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": platform.node(), "started": "then"}))
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(out), "--set", "n=3"]) == 0
    assert not lock.exists()


# ----------------------------------------------------------------------------- validation before anything runs


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "n=0"], "parameter 'n' must satisfy `min 1`, got 0"),
        (["--set", "n=-3"], "parameter 'n' must satisfy `min 1`, got -3"),
        (["--set", "scale=.nan"], "parameter 'scale' expects float, got float nan (NaN is not a number"),
        (["--set", "scale=-1"], "parameter 'scale' must satisfy `> 0`, got -1.0"),
        (["--set", "scale=.inf"], "parameter 'scale' must satisfy `finite`, got inf"),
        (["--set", "labels=[]"], "parameter 'labels' must satisfy `nonempty`"),
        (["--set", "dataset=mnist"], "parameter 'dataset' must satisfy `in {\"\", \"unitobrain-samples\"}`"),
        (["--profile", "../ci"], "profile name '../ci' must be an identifier"),
    ],
)
def test_values_are_checked_against_the_declared_constraints(env_root, capsys, args, needle):
    argv = ["run", "demo", *args, "--quiet"]
    if "--profile" not in args:
        argv[2:2] = ["--profile", "ci"]
    assert main(argv) == 2
    err = _err(capsys)
    assert needle in err, err
    assert not (env_root / "_runs").exists()


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_non_positive_timeouts_are_rejected(env_root, capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["run", "demo", "--profile", "ci", "--timeout", value])
    assert exc.value.code == 2
    err = _err(capsys)
    assert "--timeout" in err and ("positive" in err or "whole number" in err)


def test_run_study_rejects_a_zero_timeout(env_root):
    from lib.runtime.params import ParameterError
    from lib.runtime.run import run_study

    with pytest.raises(ParameterError, match="--timeout must be a positive number of seconds, got 0"):
        run_study("demo", "ci", cell_timeout=0, root=env_root)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"n: 3\nscale: 1.0\nn: 4\n", "duplicate key 'n' (line 1 and line 3)"),
        (b"n: 3\nnote: caf\xe9\n", "is not UTF-8 text (byte 14"),
        (b"profile: /tmp/elsewhere\nn: 3\n", "profile name '/tmp/elsewhere' must be an identifier"),
        (b"_profile: {cell_timeout: 0}\nn: 3\n", "_profile.cell_timeout must be a positive number of seconds"),
        (b"_profile: {synthetic_fallback: maybe}\n", "_profile.synthetic_fallback must be a bool"),
    ],
)
def test_bad_parameter_files_are_rejected(env_root, tmp_path, capsys, content, needle):
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    assert main(["run", "demo", "--params", str(path), "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = _err(capsys)
    assert needle in err and str(path) in err, err
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_or_below_a_file_or_unwritable(env_root, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(afile)]) == 2
    assert "is a file, not a folder" in _err(capsys)
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(afile / "sub" / "out")]) == 2
    assert "is a file, so no folder can be made below it" in _err(capsys)
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", "/proc/no-such/out"]) == 2
    assert "give a folder you can write to" in _err(capsys)
    assert afile.read_text() == "x"


def test_parameter_constraints_are_shown_by_params(env_root, capsys):
    assert main(["params", "demo"]) == 0
    out = capsys.readouterr().out
    assert "(min 1)" in out and "(finite, > 0)" in out


def test_workflow_table_prints_each_study_with_status_and_data(env_root, capsys):
    run = env_root / "_runs" / "demo" / "paper"
    run.mkdir(parents=True)
    (run / "provenance.json").write_text(json.dumps({
        "status": "ok", "duration_s": 12.5, "device": {"device": "cuda", "device_name": "H200"},
        "data_sources": {"unitobrain-samples": "real"}}))
    (run / "metrics.json").write_text(json.dumps({"total": 42.0, "n_labels": 2, "_data_sources": {}}))
    assert main(["workflow", "table", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "ok" in out and "12.5 s on H200" in out and "unitobrain-samples: real" in out
    assert "total=42" in out and "_data_sources" not in out
    (run / "provenance.json").unlink()
    assert main(["workflow", "table", "--profile", "paper"]) == 1
    assert "not run" in capsys.readouterr().out


def test_smoke_runs_get_their_own_folder_and_key(env_root, capsys):
    assert main(["run", "demo", "--profile", "ci", "--smoke", "--quiet"]) == 2
    assert "declares no _profile.smoke overrides" in _err(capsys)
    runs = env_root / "_runs" / "demo"
    assert main(["run", "demo", "--profile", "lab", "--smoke", "--quiet", "--out", str(runs / "lab")]) == 2
    assert "holds only runs of the unchanged profile" in _err(capsys)
    assert main(["run", "demo", "--profile", "lab", "--smoke", "--quiet"]) == 0
    assert "total = 6.0" in capsys.readouterr().out  # n=3 from _profile.smoke, scale=2 from lab.yaml
    prov = json.loads((runs / "lab-smoke" / "provenance.json").read_text())
    assert prov["overrides"] == {"n": 3} and prov["status"] == "ok"
    assert sorted(p.name for p in runs.iterdir()) == ["lab-smoke"]


def test_gathered_tables_carry_the_data_source_and_skip_temporary_folders(tmp_path):
    from lib.pages import results, tables

    runs = tmp_path / "_runs"
    for folder, sources in (("ci", {"nist-pgaa": "synthetic (dataset 'nist-pgaa' is not available)"}),
                            (".ci.tmp-123", {"nist-pgaa": "real"})):
        (runs / "demo" / folder).mkdir(parents=True)
        (runs / "demo" / folder / "provenance.json").write_text(json.dumps(
            {"study": "demo", "profile": "ci", "status": "ok", "data_sources": sources}))
        (runs / "demo" / folder / "metrics.json").write_text(json.dumps({"total": 1.0, "_data_sources": sources}))
    table = tables.gather_runs(runs)
    assert list(table["run"]) == ["demo/ci"] and list(table["metric"]) == ["total"]
    assert table["data_source"][0] == "nist-pgaa: synthetic (dataset 'nist-pgaa' is not available)"
    assert results.run_summary(table)["data"][0].startswith("nist-pgaa: synthetic")


# ----------------------------------------------------------------------------- smaller command-line findings


def test_interrupting_a_download_says_it_resumes(monkeypatch, capsys):
    def interrupted(name, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "download_dataset", interrupted)
    assert main(["data", "fetch", "dsb2018"]) == 130
    err = _err(capsys)
    assert "the download of 'dsb2018' was interrupted" in err and "`studies data fetch dsb2018` again resumes" in err
    assert "had not started" not in err


def test_gather_refuses_a_runs_folder_that_does_not_exist(tmp_path, capsys):
    typo = tmp_path / "_rnus"
    assert main(["workflow", "gather", "--runs", str(typo), "--out", str(tmp_path / "t")]) == 2
    assert f"--runs {typo} does not exist; give the folder the runs were written to" in _err(capsys)
    assert not typo.exists() and not (tmp_path / "t").exists()
    assert main(["workflow", "table", "--runs", str(typo)]) == 2
    assert f"--runs {typo} does not exist" in _err(capsys)


def test_params_must_be_a_file_and_not_given_with_profile(env_root, tmp_path, capsys):
    folder = env_root / "parameters" / "demo"
    assert main(["run", "demo", "--params", str(folder), "--quiet", "--out", str(tmp_path / "o")]) == 2
    needle = f"--params {folder} is a folder, not a parameter file; give one YAML file, e.g. --params {folder}/ci.yaml"
    assert needle in _err(capsys)
    assert main(["run", "demo", "--params", str(folder), "--smoke", "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert "is a folder, not a parameter file" in _err(capsys)
    assert main(["run", "demo", "--profile", "lab", "--params", str(folder / "ci.yaml"), "--quiet",
                 "--out", str(tmp_path / "o")]) == 2
    assert "give either --profile or --params, not both" in _err(capsys)
    assert not (tmp_path / "o").exists()


def test_a_sigint_inherited_ignored_is_given_back_its_default(capsys):
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job of a non-interactive shell
    try:
        assert main(["data", "list"]) == 0
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, old)
