"""Build the book from executed studies.

``python -m lib book --profile lab`` (what ``make book`` calls):

1. runs every study chapter listed in ``_toc.yml`` into ``_runs/<study>/<profile>/`` through
   the Snakemake workflow (``workflow/Snakefile``, several chapters at once), reusing a previous
   run only when it finished and its :func:`lib.runtime.run.run_key` (chapter, the study's
   ``lib/<study>/``, ``lib/core``, ``lib/runtime``, parameter file, environment) is unchanged;
2. stages a copy of the book in ``_build/stage/<profile>/`` in which each chapter's
   MyST source is replaced by its executed notebook;
3. builds the HTML with ``jupyter-book build -W -n --keep-going`` into ``_build/html``,
   failing on any warning. The executed chapters are not run again; pages that are
   notebooks but not studies (the results page, which reads ``_runs/``) are executed
   during this build, after the studies.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from lib.runtime.record import RunRecord
from lib.runtime.run import (
    RunResult,
    StudyExecutionError,
    get_study,
    list_studies,
    repo_root,
    run_study,
)
from lib.runtime.status import run_state
from lib.site import publish

__all__ = ["StudyRun", "toc_files", "study_chapters", "workflow_file", "run_studies", "stage", "build_book"]


@dataclass
class StudyRun:
    """One study's run for the book and whether it was reused."""

    study: str
    result: RunResult
    reused: bool
    #: the chapter's own wall time, ``duration_s`` of its ``provenance.json`` (of the reused run when reused;
    #: None when not recorded), never the time of the workflow that ran several chapters at once
    seconds: float | None

    def summary(self) -> str:
        """One log line: ``"demo/lab: ran in 12 s"`` or ``"demo/lab: reused (its run took 12 s, ended ...)"``."""
        took = f"{self.seconds:.0f} s" if self.seconds is not None else "an unrecorded time"
        where = f"{self.study}/{self.result.profile}"
        if self.reused:
            ended = self.result.provenance.get("ended")
            return f"{where}: reused (its run took {took}" + (f", ended {ended})" if ended else ")")
        return f"{where}: ran in {took}"


def _duration(result: RunResult) -> float | None:
    """``duration_s`` of a run's ``provenance.json`` (None when not recorded)."""
    seconds = result.provenance.get("duration_s")
    return float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` entry of a ``jb-book`` table of contents, in order."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    found.append(str(toc.get("root")))
    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def study_chapters(root: Path | None = None) -> list[str]:
    """Names of the studies whose chapter ``book/<study>/<study>`` is in ``_toc.yml``."""
    root = root or repo_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = {f.removesuffix(".md").removesuffix(".ipynb") for f in toc_files(toc)}
    return [s.name for s in list_studies(root) if f"book/{s.name}/{s.name}" in files]


def _result(name: str, profile: str, out: Path) -> RunResult:
    """The run in ``out`` as a :class:`RunResult` (read through its record)."""
    record = RunRecord.read(out)
    assert record is not None
    return RunResult(name, profile, out, out / f"{name}.ipynb", record.metrics, record.provenance(), reused=True)


def workflow_file() -> Path | None:
    """The Snakefile beside this package (``workflow/Snakefile`` of the checkout), if there is one."""
    path = Path(__file__).resolve().parents[2] / "workflow" / "Snakefile"
    return path if path.is_file() else None


def _run_with_workflow(targets: list[str], profile: str, *, root: Path, cores: int, progress: bool) -> None:
    """Run the stale chapters through the Snakemake workflow (the engine of sweeps, GPU boxes and SLURM too)."""
    snakefile = workflow_file()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(root), "--cores", str(cores),
           "--keep-going", "--rerun-incomplete", "--forcerun", "run", "--config", f"profiles=[{profile}]",
           "sweeps=false", "--", *targets]
    print("[book] " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, cwd=root, capture_output=not progress, text=True)
    if proc.returncode != 0:
        logs = [root / "_runs" / "_logs" / Path(t).parent.relative_to("_runs").as_posix() for t in targets]
        tails = []
        for log in (Path(f"{p}.log") for p in logs):
            if log.is_file():
                tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
                tails.append(f"--- {log}\n{tail}")
        detail = "\n".join(tails) or (proc.stderr or "")[-3000:]
        raise StudyExecutionError(
            f"the workflow failed for {len(targets)} chapter run(s) (exit {proc.returncode}); each job's log is "
            f"under {root / '_runs' / '_logs'}:\n{detail}",
            notebook=root / targets[0], cell=None, ename="WorkflowError", evalue=f"exit {proc.returncode}",
        )


def run_studies(
    profile: str = "lab", *, studies: Iterable[str] | None = None, force: bool = False, root: Path | None = None,
    progress: bool = True, cores: int | None = None,
) -> list[StudyRun]:
    """Run (or reuse) each study at ``profile``; a study without that profile is an error.

    A run is reused only when :func:`lib.runtime.status.run_state` calls it current (it ended ``ok``
    and its key is unchanged). The others run through the Snakemake workflow, ``cores``
    at a time (default: this machine's cores), so the book, the sweeps, a GPU box and a SLURM
    cluster share one engine; without the workflow (a plain ``pip install``) they run one after
    another in this process.
    """
    root = root or repo_root()
    names = list(studies) if studies is not None else study_chapters(root)
    stale, runs = [], {}
    for name in names:
        out = root / "_runs" / name / profile
        state = run_state(get_study(name, root), profile, runs=root / "_runs")
        if state.state == "current" and not force:
            found = _result(name, profile, out)
            print(f"[book] {name}/{profile}: current since {found.provenance.get('ended')}, reusing {out}",
                  file=sys.stderr)
            runs[name] = StudyRun(name, found, True, _duration(found))
        else:
            print(f"[book] {name}/{profile}: {'forced' if force else state.state}"
                  + (f" ({state.reason})" if state.reason and not force else ""), file=sys.stderr)
            stale.append(name)
    if stale and workflow_file() is not None and importlib.util.find_spec("snakemake") is not None:
        cores = cores or os.cpu_count() or 1
        print(f"[book] executing {', '.join(stale)} at {profile} through the workflow on {cores} cores",
              file=sys.stderr)
        _run_with_workflow([f"_runs/{n}/{profile}/metrics.json" for n in stale], profile, root=root, cores=cores,
                           progress=progress)
        for name in stale:
            state = run_state(get_study(name, root), profile, runs=root / "_runs")
            if state.state != "current":
                raise StudyExecutionError(
                    f"the workflow ran {name}/{profile} but left no current run in "
                    f"{root / '_runs' / name / profile} ({state.state}: {state.reason}); "
                    f"see {root / '_runs' / '_logs' / name / profile}.log",
                    notebook=root / "_runs" / name / profile / f"{name}.ipynb", cell=None, ename="WorkflowError",
                    evalue="no run",
                )
            res = _result(name, profile, root / "_runs" / name / profile)
            res.reused = False
            runs[name] = StudyRun(name, res, False, _duration(res))  # its own time, not the whole workflow's
    else:
        for name in stale:
            out = root / "_runs" / name / profile
            print(f"[book] {name}/{profile}: executing", file=sys.stderr)
            res = run_study(name, profile, out=out, root=root, progress=progress)
            runs[name] = StudyRun(name, res, False, _duration(res))
    return [runs[n] for n in names]


def stage(profile: str, runs: list[StudyRun], root: Path | None = None) -> Path:
    """Copy the book into ``_build/stage/<profile>`` with executed notebooks in place of the chapters."""
    import nbformat

    root = root or repo_root()
    dest = root / "_build" / "stage" / profile
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    config = publish.configure(yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")))  # buttons on/off
    execute = config.setdefault("execute", {})
    execute["execute_notebooks"] = "force"  # non-study notebook pages run now, after the studies...
    execute["exclude_patterns"] = ["*.ipynb"]  # ...while the chapters, executed by the runner, do not
    (dest / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.copy2(root / "_toc.yml", dest / "_toc.yml")
    executed = {r.study: r.result.notebook for r in runs}
    ignore = shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__")
    shutil.copytree(root / "book", dest / "book", ignore=ignore)
    for study, nb_path in executed.items():
        (dest / "book" / study / f"{study}.md").unlink()
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags and "hide-input" not in tags:
                tags.append("hide-input")
        nbformat.write(nb, dest / "book" / study / f"{study}.ipynb")
    return dest


def build_book(
    profile: str = "lab", *, force: bool = False, studies: Iterable[str] | None = None, root: Path | None = None,
    progress: bool = True, cores: int | None = None,
) -> Path:
    """Run the studies, stage the book and build its HTML; returns ``_build/html``.

    Raises
    ------
    StudyError
        A study lacks the profile.
    lib.runtime.run.StudyExecutionError
        A study's cell failed (nothing is built).
    RuntimeError
        ``jupyter-book`` reported an error or a warning.
    """
    root = root or repo_root()
    runs = run_studies(profile, studies=studies, force=force, root=root, progress=progress, cores=cores)
    staged = stage(profile, runs, root)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(staged), "--path-output", str(root), "-W", "-n", "--keep-going"]
    print("[book] " + " ".join(cmd), file=sys.stderr)
    env = {**os.environ, "STUDIES_ROOT": str(root), "STUDIES_BOOK_PROFILE": profile,  # read by the execution page
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, cwd=root, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (exit {proc.returncode}); the warnings above name the page and line. "
            f"Staged sources are in {staged}"
        )
    html = root / "_build" / "html"
    for r in runs:
        print(f"[book] {r.summary()}", file=sys.stderr)
    print(f"[book] built {html / 'index.html'}", file=sys.stderr)
    return html

