"""The study runner: validate parameters, execute a chapter with papermill, collect results.

One study is one Jupytext MyST notebook ``book/<study>/<study>.md`` plus parameter
files ``parameters/<study>/<profile>.yaml``. :func:`run_study` (also the command
``python -m lib run STUDY --profile NAME``) writes into its output directory:

``<study>.ipynb``
    the executed notebook (kept, with the failing cell marked, when a cell fails);
``metrics.json``, ``provenance.json``
    the run record (:class:`lib.runtime.record.RunRecord`): every number the notebook recorded with
    :func:`lib.core.report.metric`; status, run key and the digest of each input it covers, overrides,
    parameters, data sources, threads, timing, git commit, versions, device;
``figures/<name>.png``
    every figure the notebook glued with :func:`lib.core.report.figure` (other image outputs as
    ``cell<N>-<k>.png``);
``kernel.log``
    the kernel's own stderr (start-up warnings, crashes); empty when no kernel was launched.

``.partial-<status>/``
    a later run into the same folder that did not end ``ok`` (``failed``, ``timeout``,
    ``interrupted``), kept inside the folder of the finished run it did not displace.

The run writes into a locked temporary sibling ``.<out>.tmp-<pid>`` and replaces the output
folder with it when it ends, so a folder never mixes two runs, except that a run which did not end
``ok`` never displaces a finished one: it lands in ``<out>/.partial-<status>/`` and the finished run
stays reusable. Only an empty folder or an earlier run of the study is ever replaced
(:mod:`lib.runtime.outdir`); Ctrl-C stops a run at any moment (:mod:`lib.runtime.interrupt`).
``provenance.json`` says ``status: ok | failed | timeout | interrupted`` and each dataset's ``data_source``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.core.report import GLUE_PREFIX, parse_number
from lib.core.repro import sha256_file
from lib.runtime.interrupt import InterruptGuard, KernelHandle, RunStopped, kernel_manager_class, run_in_worker
from lib.runtime.outdir import install, normalise_out, protected_reason, run_folder_problem
from lib.runtime.params import (
    ParameterError,
    ParamSpec,
    ProfileInfo,
    load_parameter_file,
    parameters_cell,
    parse_parameters,
    validate,
)
from lib.runtime.provenance import provenance
from lib.runtime.record import RunRecord, key_of

__all__ = [
    "StudyError",
    "StudyExecutionError",
    "Study",
    "RunResult",
    "repo_root",
    "list_studies",
    "get_study",
    "resolve_parameters",
    "run_study",
    "collect_metrics",
    "export_figures",
    "run_key",
    "run_inputs",
    "read_chapter",
    "chapter_parameters",
    "study_inputs",
    "DEFAULT_CELL_TIMEOUT",
    "StudyInterruptedError",
    "RunLockedError",
    "check_profile_name",
    "overrides_hash",
    "default_out_dir",
    "code_cell_lines",
    "tag_source_lines",
    "thread_environment",
    "SOURCE_LINE_KEY",
]

#: Per-cell execution limit (seconds) when neither the call nor the profile sets one.
DEFAULT_CELL_TIMEOUT = 3600
_INSERTED_TAGS = {"provenance", "injected-parameters"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StudyError(LookupError):
    """Unknown study or profile, or an unusable parameter file (the message lists what exists)."""


class RunLockedError(StudyError):
    """Another run is writing into the same output folder."""


class StudyExecutionError(RuntimeError):
    """A cell of a study notebook raised; the message names the study, the cell and the traceback."""

    def __init__(self, message: str, *, notebook: Path, cell: int | None, ename: str, evalue: str):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue


class StudyInterruptedError(RuntimeError):
    """The run was interrupted (Ctrl-C, SIGTERM); it is recorded as ``status: interrupted`` (exit code 130)."""

    def __init__(self, message: str, *, out_dir: Path):
        super().__init__(message)
        self.out_dir = out_dir


@dataclass(frozen=True)
class Study:
    """A study: its name, chapter notebook and parameter profiles."""

    name: str
    notebook: Path
    parameter_dir: Path

    @property
    def profiles(self) -> list[str]:
        """Names of the parameter files ``parameters/<study>/*.yaml``."""
        return sorted(p.stem for p in self.parameter_dir.glob("*.yaml"))

    def profile_info(self, profile: str) -> ProfileInfo:
        """The ``_profile`` block of one parameter file."""
        return load_parameter_file(self.parameter_dir / f"{profile}.yaml")[1]


@dataclass
class RunResult:
    """What :func:`run_study` produced."""

    study: str
    profile: str
    out_dir: Path
    notebook: Path
    metrics: dict[str, float | int]
    provenance: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    reused: bool = False


def repo_root() -> Path:
    """The checkout holding ``book/`` and ``parameters/``.

    ``$STUDIES_ROOT`` when set; else the checkout this package lives in (a source or editable
    install); else, for a package installed into site-packages, the working directory or the
    nearest folder above it that holds ``book/`` and ``parameters/``.
    """
    env = os.environ.get("STUDIES_ROOT")
    root = Path(env).expanduser().resolve() if env else Path(__file__).resolve().parents[2]
    if not env and not (root / "book").is_dir():
        cwd = Path.cwd().resolve()
        root = next((d for d in (cwd, *cwd.parents) if (d / "book").is_dir() and (d / "parameters").is_dir()), root)
    if not (root / "book").is_dir():
        raise StudyError(
            f"{root} has no book/ directory; run from a checkout of the project "
            "or set STUDIES_ROOT to one"
        )
    return root


def list_studies(root: Path | None = None) -> list[Study]:
    """All studies: directories ``parameters/<name>/`` that have a chapter ``book/<name>/<name>.md``."""
    root = root or repo_root()
    out = []
    if not (root / "parameters").is_dir():
        return out
    for pdir in sorted(p for p in (root / "parameters").iterdir() if p.is_dir()):
        nb = root / "book" / pdir.name / f"{pdir.name}.md"
        if nb.is_file():
            out.append(Study(pdir.name, nb, pdir))
    return out


def get_study(name: str, root: Path | None = None) -> Study:
    """The study called ``name`` (an error lists the existing ones)."""
    studies = {s.name: s for s in list_studies(root)}
    if name not in studies:
        known = ", ".join(studies) or "none"
        raise StudyError(f"unknown study {name!r}; available studies: {known}")
    return studies[name]


def read_chapter(path: Path) -> Any:
    """A chapter's MyST-markdown source as a notebook (jupytext, ``md:myst``)."""
    import jupytext

    return jupytext.read(path, fmt="md:myst")


def chapter_parameters(study: Study, *, notebook: Any = None) -> dict[str, ParamSpec]:
    """The typed parameters declared in a study chapter's ``parameters`` cell (name -> spec)."""
    nb = notebook if notebook is not None else read_chapter(study.notebook)
    return parse_parameters(parameters_cell(nb))


def resolve_parameters(
    study: Study,
    profile: str | None = "lab",
    *,
    params_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    notebook: Any = None,
) -> tuple[dict[str, Any], ProfileInfo, Path, str]:
    """Validate a profile (or parameter file) plus overrides against the study's parameters cell.

    Returns
    -------
    params : dict
        Validated values passed to papermill (the profile's keys plus overrides; ``profile``
        is filled in when the notebook declares it).
    info : ProfileInfo
    path : Path
        The parameter file used.
    profile : str
        The profile name (the file's ``profile`` value or its stem).
    """
    if params_file is not None:
        path = _parameter_file(params_file)
    else:
        if profile is None:
            raise StudyError("give a profile name or a parameter file")
        check_profile_name(profile, source="--profile")
        path = study.parameter_dir / f"{profile}.yaml"
        if not path.is_file():
            raise StudyError(
                f"study {study.name!r} has no profile {profile!r}; available profiles: {', '.join(study.profiles)}"
            )
    values, info = load_parameter_file(path)
    specs = chapter_parameters(study, notebook=notebook)
    params = validate(specs, values, source=str(path))
    if overrides:
        params.update(validate(specs, dict(overrides), source="--set"))
    name = str(params.get("profile", path.stem)) if params_file is not None else str(profile)
    if params_file is not None and "profile" in values:
        check_profile_name(name, source=f"{path}: profile")
    elif params_file is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ParameterError(f"{path}: the file name {name!r} names the run's folder; use letters, digits, '_', "
                             "'.' or '-' (rename the file or give --out)")
    if "profile" in specs:
        if "profile" in values and params_file is None and values["profile"] != profile:
            raise ParameterError(
                f"{path}: declares profile {values['profile']!r} but is the file of profile {profile!r}"
            )
        params.setdefault("profile", name)
    return params, info, path, name


def _parameter_file(params_file: str | Path) -> Path:
    """``--params``: an existing file (a folder or a missing path is refused, saying which it is)."""
    path = Path(params_file)
    if path.is_dir():
        example = next(iter(sorted(path.glob("*.yaml"))), path / "lab.yaml")
        raise StudyError(f"--params {path} is a folder, not a parameter file; give one YAML file, e.g. "
                         f"--params {example}")
    if not path.is_file():
        raise StudyError(f"parameter file {path} does not exist")
    return path


def check_profile_name(name: Any, *, source: str) -> str:
    """A profile name must be an identifier (letters, digits, ``_``): it names the folder ``_runs/<study>/<name>``."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise ParameterError(
            f"{source}: profile name {name!r} must be an identifier (ASCII letters, digits and '_', not starting "
            "with a digit), since it names the run's folder _runs/<study>/<profile>; rename it"
        )
    return name


def overrides_hash(overrides: Mapping[str, Any]) -> str:
    """A short, stable hash of a set of overrides (names the folder of a run with ``--set``)."""
    text = json.dumps(dict(overrides), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def default_out_dir(root: Path, study: str, profile: str, *, overrides: Mapping[str, Any] | None = None,
                    smoke: bool = False) -> Path:
    """Where a run lands without ``--out``: ``_runs/<study>/<profile>`` only for the profile as it is.

    A smoke run goes to ``<profile>-smoke``, a run with ``--set`` to ``<profile>-set-<hash of the overrides>``
    (or ``<profile>-smoke-set-<hash>``), so that the profile's own folder, the one the book reuses,
    only ever holds runs of the unchanged profile.
    """
    name = profile + ("-smoke" if smoke else "")
    if overrides:
        name += f"-set-{overrides_hash(overrides)}"
    return root / "_runs" / study / name


def _code_cell_ordinal(nb: Any, index: int) -> int:
    """1-based number of cell ``index`` among the chapter's own code cells (inserted cells not counted)."""
    n = 0
    for cell in nb.cells[: index + 1]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and not tags & _INSERTED_TAGS:
            n += 1
    return n


_FENCE = re.compile(r"^(`{3,}|~{3,})\s*\{code-cell\}")
#: Notebook metadata key of each code cell's line in the chapter source (set before execution).
SOURCE_LINE_KEY = "source_line"


def code_cell_lines(md_path: Path) -> list[int]:
    """Line (1-based) of the first code line of every ``{code-cell}`` of a MyST chapter, in order.

    Found from the fences themselves, so cells that start alike are told apart.
    """
    lines = md_path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group(1)
        j = i + 1
        if j < len(lines) and lines[j].strip() == "---":  # a YAML options block
            j += 1
            while j < len(lines) and lines[j].strip() != "---":
                j += 1
            j += 1
        while j < len(lines) and lines[j].startswith(":"):  # short options (:tags: [...])
            j += 1
        out.append(j + 1)
        k = j
        while k < len(lines) and not lines[k].startswith(fence[0] * len(fence)):
            k += 1
        i = k + 1
    return out


def tag_source_lines(nb: Any, md_path: Path) -> None:
    """Record in each code cell's metadata the chapter line where its code starts (:data:`SOURCE_LINE_KEY`)."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    lines = code_cell_lines(md_path)
    if len(lines) != len(cells):
        return  # not a plain MyST chapter: leave the cells untagged
    for cell, line in zip(cells, lines):
        cell.metadata[SOURCE_LINE_KEY] = line


def collect_metrics(nb: Any) -> dict[str, float | int]:
    """Numbers glued in an executed notebook (``{name: value}``), in order of appearance."""
    metrics: dict[str, float | int] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            data = out.get("data", {})
            text = data.get(GLUE_PREFIX + "text/plain", data.get("text/plain"))
            if name is None or text is None or any(k.endswith("image/png") for k in data):
                continue
            value = parse_number(text if isinstance(text, str) else "".join(text))
            if value is not None:
                metrics[name] = value
    return metrics


def export_figures(nb: Any, directory: Path) -> list[Path]:
    """Write every PNG output of ``nb`` to ``directory`` (glued ones under their glue name)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for ci, cell in enumerate(nb.cells):
        for k, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            png = data.get(GLUE_PREFIX + "image/png", data.get("image/png"))
            if png is None:
                continue
            name = out.get("metadata", {}).get("scrapbook", {}).get("name") or f"cell{ci}-{k}"
            path = directory / f"{name}.png"
            path.write_bytes(base64.b64decode(png if isinstance(png, str) else "".join(png)))
            written.append(path)
    return written


@functools.lru_cache(maxsize=1)
def _environment_fingerprint() -> str:  # the installed distributions do not change within one process
    dists = sorted(
        f"{d.metadata['Name']}=={d.version}".lower() for d in importlib.metadata.distributions() if d.metadata["Name"]
    )
    return f"python {platform.python_version()}\n" + "\n".join(dists)


#: Suffixes of the library files a run can read (code, manifests, data tables).
_LIB_SUFFIXES = frozenset({".py", ".csv", ".json", ".yaml"})
#: Packages of ``lib/`` that every study's runs depend on: what chapters import (``core``) and the runner that
#: executes them (``runtime``). The site (``lib/site``), the generated pages (``lib/pages``) and the command line
#: (``lib/cli.py``) are not among them: they cannot change a chapter's output.
SHARED_PACKAGES: tuple[str, ...] = ("core", "runtime")
#: Top-level modules of ``lib/`` a run imports (the package itself; not ``cli``, ``gpucheck`` or ``__main__``).
SHARED_MODULES: tuple[str, ...] = ("__init__.py",)
#: Files pinning the environment (a change re-runs everything).
ENV_FILES: tuple[str, ...] = ("requirements/lock.txt", "requirements/torch.txt")
#: Labels of the inputs of :func:`run_inputs` that are not files of the checkout.
PARAMETERS_INPUT = "<parameter file>"
OVERRIDES_INPUT = "<overrides>"
ENVIRONMENT_INPUT = "<installed packages>"


def _lib_files(directory: Path, *, recursive: bool = True) -> list[Path]:
    files = directory.rglob("*") if recursive else directory.glob("*")
    return sorted(f for f in files if f.is_file() and f.suffix in _LIB_SUFFIXES and "__pycache__" not in f.parts)


def study_inputs(study: Study) -> list[Path]:
    """Every file a run of ``study`` reads, apart from its parameter file: its key and its workflow inputs.

    That is the chapter, ``lib/__init__.py`` (:data:`SHARED_MODULES`), the shared packages
    (:data:`SHARED_PACKAGES`: ``lib/core`` and the runner ``lib/runtime``, data manifests included), the
    study's own package ``lib/<study>/`` (when it has one) and the environment's lock files
    (:data:`ENV_FILES`, when present). Another study's package, the site (``lib/site``), the pages
    (``lib/pages``) and the command line (``lib/cli.py``) are not among them, so editing them leaves this
    study's runs current. The Snakefile declares exactly these files as the inputs of a run, and
    :func:`run_inputs` digests them.
    """
    lib_dir = Path(__file__).resolve().parents[1]
    files = [study.notebook]
    files += [lib_dir / m for m in SHARED_MODULES if (lib_dir / m).is_file()]
    for pkg in (*SHARED_PACKAGES, study.name):
        if (lib_dir / pkg).is_dir():
            files += _lib_files(lib_dir / pkg)
    checkout = lib_dir.parent
    files += [checkout / f for f in ENV_FILES if (checkout / f).is_file()]
    return files


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_inputs(study: Study, params_path: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``{input: sha256}`` of everything a run's output depends on; :func:`run_key` hashes these digests.

    The files of :func:`study_inputs` (named by their path relative to the checkout), the parameter file
    (:data:`PARAMETERS_INPUT`: its content, wherever it lies), the overrides (:data:`OVERRIDES_INPUT`, in
    any order) and the installed distributions (:data:`ENVIRONMENT_INPUT`). A stale run's record names the
    inputs whose digests changed (:func:`lib.runtime.record.changed_inputs`).
    """
    checkout = Path(__file__).resolve().parents[2]
    out: dict[str, str] = {}
    for f in study_inputs(study):
        try:
            name = f.resolve().relative_to(checkout).as_posix()
        except ValueError:  # the chapter of a collection outside this checkout
            name = f"book/{study.name}/{f.name}" if f == study.notebook else f.name
        out[name] = _digest(f.read_bytes())
    out[PARAMETERS_INPUT] = _digest(Path(params_path).read_bytes())
    out[OVERRIDES_INPUT] = _digest(json.dumps(dict(overrides or {}), sort_keys=True, default=str).encode())
    out[ENVIRONMENT_INPUT] = _digest(_environment_fingerprint().encode())
    return out


def run_key(study: Study, params_path: Path, overrides: Mapping[str, Any] | None = None) -> str:
    """The key of a run: :func:`lib.runtime.record.key_of` of :func:`run_inputs`.

    The book reuses an earlier run only when this key is unchanged (a notebook-only cache would keep
    stale results after a change to ``lib/`` or a parameter file); editing one study's package, the site
    or the pages leaves the other keys unchanged.
    """
    return key_of(run_inputs(study, params_path, overrides))


def thread_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Variables that give every compute backend of the kernel the thread budget of ``OMP_NUM_THREADS``.

    PyTorch and BLAS follow ``OMP_NUM_THREADS``; Numba does not: its parallel loops start one thread per
    core whatever ``OMP_NUM_THREADS`` says. Two one-thread runs side by side on two cores (``make book``
    through the workflow, ``--set-threads run=1``) then run four busy threads, and Numba's waiting workers
    slowed each run about twelvefold (the radiative chapter at ``ci``: 370 s each instead of 30 s).

    Parameters
    ----------
    environ : Mapping[str, str]
        The runner's environment (usually ``os.environ``).

    Returns
    -------
    dict[str, str]
        ``{"NUMBA_NUM_THREADS": n}`` when ``OMP_NUM_THREADS`` is a positive integer ``n`` and
        ``NUMBA_NUM_THREADS`` is not set; otherwise empty (an explicit ``NUMBA_NUM_THREADS`` wins).
    """
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if "NUMBA_NUM_THREADS" in environ or not omp.isdigit() or int(omp) < 1:
        return {}
    return {"NUMBA_NUM_THREADS": str(int(omp))}


def _provenance_cell(record: Mapping[str, Any]) -> Any:
    import nbformat

    text = json.dumps(record, default=str)
    src = (
        "# Provenance of this run (inserted by the runner)\n"
        "import json\n"
        "from lib.core.report import show_provenance\n"
        f"show_provenance(json.loads({text!r}))"
    )
    return nbformat.v4.new_code_cell(src, metadata={"tags": ["remove-input", "provenance"]})


def _writable_parent(out_dir: Path) -> None:
    """Refuse an output folder that cannot be one (a file, below a file, not writable), with the fix."""
    if out_dir.exists() and not out_dir.is_dir():
        raise StudyError(f"--out {out_dir} is a file, not a folder; give a folder path (it is created if needed)")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StudyError(f"--out {out_dir}: {parent} is a file, so no folder can be made below it; "
                                 "give another --out")
            break
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StudyError(f"--out {out_dir}: cannot create {out_dir.parent} ({err.strerror or err}); "
                         "give a folder you can write to") from None
    if not os.access(out_dir.parent, os.W_OK | os.X_OK) or (out_dir.exists() and not os.access(out_dir, os.W_OK)):
        raise StudyError(f"--out {out_dir}: {out_dir.parent if not out_dir.exists() else out_dir} is not writable; "
                         "give a folder you can write to")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire_lock(out_dir: Path) -> Path:
    """Create ``.<out>.lock`` beside the output folder; a live holder makes this a :class:`RunLockedError`."""
    lock = out_dir.parent / f".{out_dir.name}.lock"
    me = {"pid": os.getpid(), "host": platform.node(),
          "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                holder = {}
            same_host = holder.get("host") == platform.node()
            if same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
                lock.unlink(missing_ok=True)  # left by a run that was killed: take it over
                continue
            raise RunLockedError(
                f"another run (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                f"{holder.get('started', '?')}) is writing into {out_dir}; wait for it to finish or give another "
                f"--out. If no such run exists any more, delete {lock}."
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(me, fh)
        return lock
    raise RunLockedError(f"could not lock {out_dir} ({lock}); delete {lock} if no run is using it")


def _failed_cell(nb: Any, statuses: tuple[str, ...]) -> int | None:
    for i, c in enumerate(nb.cells):
        if c.get("metadata", {}).get("papermill", {}).get("status") in statuses:
            return i
    return None


def _last_started_cell(nb: Any) -> int | None:
    """The cell that was running when execution stopped: the last code cell papermill gave a start time."""
    last = None
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and c.get("metadata", {}).get("papermill", {}).get("start_time"):
            last = i
    return last


def _mark_unfinished(nb: Any, index: int | None, status: str) -> None:
    """After a timeout or an interrupt, say so in the cells' papermill metadata (papermill marks all completed)."""
    for i, c in enumerate(nb.cells):
        meta = c.get("metadata", {}).get("papermill")
        if meta is None:
            continue
        if index is not None and i == index:
            meta["status"], meta["exception"] = status, True
        elif not meta.get("start_time"):
            meta["status"] = "pending"


def _where(st: Study, root: Path, nb: Any, index: int | None) -> tuple[int | None, str]:
    if index is None or not 0 <= index < len(nb.cells):
        return None, "an unknown cell"
    cell = nb.cells[index]
    ordinal = _code_cell_ordinal(nb, index)
    line = cell.get("metadata", {}).get(SOURCE_LINE_KEY)
    try:
        src = st.notebook.relative_to(root)
    except ValueError:
        src = st.notebook
    return ordinal, f"code cell {ordinal} ({src}" + (f" line {line})" if line else ")")


def run_study(
    study: str,
    profile: str | None = "lab",
    *,
    overrides: Mapping[str, Any] | None = None,
    params_file: str | Path | None = None,
    out: str | Path | None = None,
    cell_timeout: int | None = None,
    smoke: bool = False,
    progress: bool = True,
    log_output: bool = False,
    root: Path | None = None,
    force: bool = False,
) -> RunResult:
    """Execute one study and write its notebook, metrics, provenance and figures.

    The run writes into a temporary sibling of the output folder, locked against a second
    run into the same folder, and renames it into place when it ends, so the folder always holds
    exactly one run. A run that does not end ``ok`` never displaces a finished (``ok``) run: it is
    kept inside that run's folder as ``<out>/.partial-<status>/`` (see :mod:`lib.runtime.outdir`),
    and the finished run stays reusable. ``provenance.json`` records ``status`` (``ok``,
    ``failed``, ``timeout``, ``interrupted``), the run key with its inputs and each dataset's
    ``data_source``; only ``ok`` runs are reused (:func:`lib.runtime.record.reuse_state`).

    Ctrl-C or SIGTERM at any moment (before the kernel starts, during a cell, while the results
    are saved) stops the run within seconds and records it as ``interrupted``
    (:mod:`lib.runtime.interrupt`), even when the runner was started with SIGINT ignored.
    A relative ``$STUDIES_DATA_MIRROR`` is made absolute once, here, so that the kernel (which
    runs in the chapter's folder) and the runner read the same mirror.

    Parameters
    ----------
    study : str
        Study name (see :func:`list_studies`).
    profile : str, default "lab"
        Parameter profile ``parameters/<study>/<profile>.yaml``; ignored when ``params_file`` is given.
    overrides : mapping, optional
        Single values that replace the profile's (validated against the parameters cell).
    params_file : path, optional
        A user's own parameter file instead of a profile.
    out : path, optional
        Output directory; default :func:`default_out_dir` (``_runs/<study>/<profile>`` only
        without overrides). The profile's own folder refuses a run with overrides. ``.``, ``..``
        and symbolic links are resolved first. Only an empty folder or an earlier run of the study
        is replaced; the checkout or a folder above it, the current folder or one above it, the
        home folder, ``book/``, ``parameters/``, ``_runs/`` and ``_runs/<study>/`` never are.
    cell_timeout : int, optional
        Seconds a single cell may run (positive); default the profile's ``cell_timeout`` or
        :data:`DEFAULT_CELL_TIMEOUT`.
    smoke : bool
        Apply the profile's ``_profile.smoke`` overrides (short loops at full model and input size).
    progress, log_output : bool
        Show papermill's progress bar; stream cell output to the log.
    force : bool
        Replace a non-empty ``out`` that holds something other than an earlier run of the study
        (never one of the folders above).

    Raises
    ------
    StudyError, ParameterError
        Before anything runs, for an unknown study/profile, invalid parameters, an unusable
        or unsafe output folder (:class:`RunLockedError` when another run holds it).
    StudyExecutionError
        When a cell fails or times out; the partial notebook is kept in ``out``, or in
        ``out/.partial-<status>/`` when ``out`` holds a finished run (the message names the path).
    StudyInterruptedError
        On Ctrl-C or SIGTERM; the partial run is kept as for a failure, with ``status: interrupted``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from lib.core.registry import MIRROR_ENV

    mirror = os.environ.get(MIRROR_ENV)
    mirror = str(Path(mirror).expanduser().absolute()) if mirror else None  # the kernel runs elsewhere
    root = root or repo_root()
    st = get_study(study, root)
    if cell_timeout is not None and (isinstance(cell_timeout, bool) or not isinstance(cell_timeout, int)
                                     or cell_timeout <= 0):
        raise ParameterError(f"--timeout must be a positive number of seconds, got {cell_timeout!r}")
    nb = read_chapter(st.notebook)
    user_overrides = dict(overrides or {})
    all_overrides = dict(user_overrides)
    if smoke:
        path = Path(params_file) if params_file is not None else st.parameter_dir / f"{profile}.yaml"
        if params_file is None and profile is not None:
            check_profile_name(profile, source="--profile")
        if params_file is not None:
            path = _parameter_file(params_file)
        elif not path.is_file():
            raise StudyError(f"parameter file {path} does not exist")
        smoke_block = load_parameter_file(path)[1].smoke
        if not smoke_block:
            raise StudyError(f"{path} declares no _profile.smoke overrides; --smoke needs them "
                             "(e.g. _profile: {smoke: {epochs: 1}})")
        all_overrides = {**smoke_block, **user_overrides}
    params, info, params_path, profile_name = resolve_parameters(
        st, profile, params_file=params_file, overrides=all_overrides, notebook=nb
    )
    profile_dir = normalise_out(root / "_runs" / st.name / profile_name)
    if out is None:
        out_dir = default_out_dir(root, st.name, profile_name, overrides=user_overrides, smoke=smoke)
    else:
        out_dir = normalise_out(out)
        if all_overrides and params_file is None and out_dir == profile_dir:
            own = default_out_dir(root, st.name, profile_name, overrides=user_overrides, smoke=smoke)
            raise StudyError(
                f"--out {out_dir} is the folder of profile {profile_name!r} itself, which holds only runs of the "
                f"unchanged profile (the book reuses them); a run with --set or --smoke goes elsewhere: omit --out "
                f"(it then lands in {own}) "
                "or give another folder"
            )
    out_dir = normalise_out(out_dir)
    _check_out_dir(out_dir, st.name, root=root, force=force,
                   default=default_out_dir(root, st.name, profile_name, overrides=user_overrides, smoke=smoke))
    timeout = cell_timeout or info.cell_timeout or DEFAULT_CELL_TIMEOUT
    _writable_parent(out_dir)
    inputs = run_inputs(st, params_path, all_overrides)
    lock = _acquire_lock(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    try:
        with InterruptGuard() as guard:
            for stale in [*out_dir.parent.glob(f".{out_dir.name}.tmp-*"),
                          *out_dir.parent.glob(f".{out_dir.name}.old-*")]:
                shutil.rmtree(stale, ignore_errors=True)  # left by killed runs; we hold the lock
            tmp.mkdir()
            (tmp / "kernel.log").touch()  # every run folder has one (empty when no kernel was launched)
            return _execute(st, nb, params, info, params_path, profile_name, all_overrides, inputs, tmp, out_dir, root,
                            timeout=timeout, progress=progress, log_output=log_output, papermill=papermill,
                            execution_error=PapermillExecutionError, guard=guard, mirror=mirror)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        lock.unlink(missing_ok=True)


def _check_out_dir(out_dir: Path, study: str, *, root: Path, force: bool, default: Path) -> None:
    """Refuse, before anything runs, an output folder whose replacement would delete what is not a run."""
    protected = protected_reason(out_dir, roots=[root, Path(__file__).resolve().parents[2]])
    if protected:
        raise StudyError(
            f"--out {out_dir} is {protected}; a run replaces its whole output folder when it ends, so it never "
            f"writes there, not even with --force. Give a folder of its own (without --out the run lands in "
            f"{default})"
        )
    problem = None if force else run_folder_problem(out_dir, study)
    if problem:
        raise StudyError(
            f"--out {out_dir} is not empty and not an earlier run of study {study!r}: {problem}. A run replaces "
            f"its whole output folder when it ends, which would delete them. Give a new or empty folder (without "
            f"--out the run lands in {default}), or add --force to replace this folder and everything in it"
        )


def _execute(st: Study, nb: Any, params: dict[str, Any], info: ProfileInfo, params_path: Path, profile_name: str,
             overrides: dict[str, Any], inputs: dict[str, str], tmp: Path, out_dir: Path, root: Path, *, timeout: int,
             progress: bool, log_output: bool, papermill: Any, execution_error: type[Exception],
             guard: InterruptGuard, mirror: str | None) -> RunResult:
    import nbformat

    from lib.core.registry import MIRROR_ENV

    tmp_nb = tmp / f"{st.name}.ipynb"
    out_nb = out_dir / f"{st.name}.ipynb"
    params_sha = sha256_file(params_path)
    fallback = info.allows_synthetic_fallback(profile_name)
    record = provenance(
        study=st.name,
        profile=profile_name,
        seed=params.get("seed"),
        params_sha256=params_sha,
        parameters=params,
        device=params.get("device", "auto"),
    )
    key = key_of(inputs)
    record["parameter_file"] = str(params_path)
    record["overrides"] = dict(overrides)
    record["run_key"] = key
    record["inputs"] = inputs
    record["synthetic_fallback_allowed"] = fallback
    record["threads"] = {**{k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
                            if k in os.environ}, **thread_environment(os.environ)}  # what the kernel is given
    tag_source_lines(nb, st.notebook)
    nb.cells.insert(0, _provenance_cell(record))

    env_keys = ("PYTHONPATH", "STUDIES_RUN_DIR", "STUDIES_ROOT", "MPLBACKEND", "STUDIES_SYNTHETIC_FALLBACK",
                "NUMBA_NUM_THREADS", MIRROR_ENV)
    env_backup = {k: os.environ.get(k) for k in env_keys}
    os.environ.update(thread_environment(os.environ))  # the kernel's Numba keeps to OMP_NUM_THREADS too
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as notebook outputs
    lib_parent = str(Path(__file__).resolve().parents[2])  # the kernel imports the same `lib` as this runner
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, [str(root), lib_parent,
                                                                           env_backup["PYTHONPATH"]])))
    os.environ["STUDIES_RUN_DIR"] = str(tmp)
    os.environ["STUDIES_ROOT"] = str(root)
    os.environ["STUDIES_SYNTHETIC_FALLBACK"] = "1" if fallback else "0"
    if mirror:
        os.environ[MIRROR_ENV] = mirror  # absolute: the kernel's working folder is the chapter's
    kernel = KernelHandle(guard.event)
    t0 = time.perf_counter()
    executed: Any = None
    error: BaseException | None = None
    try:
        if guard.interrupted:
            error = RunStopped("interrupted before the kernel was launched")
        else:
            executed, error = run_in_worker(
                lambda: papermill.execute_notebook(
                    nb,
                    str(tmp_nb),
                    parameters=params,
                    kernel_name="python3",
                    language="python",
                    cwd=str(st.notebook.parent),
                    execution_timeout=timeout,
                    progress_bar=progress,
                    log_output=log_output,
                    request_save_on_cell_execute=True,
                    kernel_manager_class=kernel_manager_class(tmp / "kernel.log", kernel),
                    on_cell_start=kernel.on_cell_start,
                ),
                handle=kernel,
            )
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    finished = error is None and executed is not None  # every cell ran
    if guard.interrupted:
        status = "interrupted"
    elif error is None:
        status = "ok"
    elif isinstance(error, execution_error):  # a cell raised (KeyboardInterrupt: the kernel was interrupted)
        status = "interrupted" if getattr(error, "ename", "") == "KeyboardInterrupt" else "failed"
    elif isinstance(error, (KeyboardInterrupt, RunStopped)):
        status = "interrupted"
    elif isinstance(error, CellTimeoutError):
        status = "timeout"
    elif isinstance(error, DeadKernelError):
        status = "failed"
    else:
        raise error
    if not finished:
        try:
            executed = nbformat.read(tmp_nb, as_version=4)
        except (OSError, ValueError):
            executed = nb

    from lib.core.registry import recorded_data_sources

    sources = recorded_data_sources(tmp)
    (tmp / "data_sources.json").unlink(missing_ok=True)
    metrics = collect_metrics(executed)
    figure_files = export_figures(executed, tmp / "figures")
    if status == "ok" and guard.interrupted:  # Ctrl-C after the last cell, while the results were saved
        status = "interrupted"

    record["ended"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    record["duration_s"] = round(time.perf_counter() - t0, 2)
    record["status"] = status
    record["cell_timeout_s"] = timeout
    record["data_sources"] = sources
    index = None
    if status == "failed":
        index = _failed_cell(executed, ("failed",))
        if index is None:
            index = getattr(error, "cell_index", None)
    elif status in ("timeout", "interrupted") and not finished:
        index = _failed_cell(executed, ("failed",)) if getattr(error, "ename", "") else None
        index = index if index is not None else _last_started_cell(executed)
        _mark_unfinished(executed, index, status)
    ordinal, where = _where(st, root, executed, index)
    moment = f"in {where}"
    if status == "interrupted":
        if finished:
            moment = where = "after its last cell, while the run was being saved"
        elif not ordinal:  # no cell of the chapter itself began
            moment = where = "before its first cell ran " + ("(while the kernel was starting)" if kernel.pid
                                                             else "(before the kernel was launched)")
        elif isinstance(error, RunStopped):
            moment = f"before {where} started"
    if status != "ok":
        record["failed_cell"] = where
    executed.metadata["studies"] = {"status": status, "run_key": key, **({"failed_cell": where} if status != "ok"
                                                                         else {})}
    nbformat.write(executed, tmp_nb)
    run_record = RunRecord.from_provenance(record, metrics)
    run_record.write(tmp)  # provenance.json and metrics.json, through the one writer
    landed = install(tmp, out_dir, study=st.name, status=status)
    kept = "" if landed == out_dir else f"; the finished run in {out_dir} is untouched (the book still reuses it)"
    landed_nb = landed / f"{st.name}.ipynb"

    if status == "interrupted":
        raise StudyInterruptedError(
            f"study {st.name!r} (profile {profile_name!r}) was interrupted {moment}; the partial run is kept "
            f"in {landed} with status 'interrupted' (the book never reuses it){kept}. Run the same command again "
            "to start over.",
            out_dir=landed,
        )
    if status == "timeout":
        raise StudyExecutionError(
            f"study {st.name!r} (profile {profile_name!r}) timed out in {where}: the cell ran longer than the "
            f"{timeout} s limit per cell. Give a larger limit with --timeout SECONDS (or _profile.cell_timeout in "
            f"the parameter file), or a smaller profile. The partial notebook is kept at {landed_nb}{kept}",
            notebook=landed_nb, cell=ordinal, ename="CellTimeoutError", evalue=f"cell ran longer than {timeout} s",
        )
    if status == "failed":
        ename = getattr(error, "ename", type(error).__name__)
        evalue = getattr(error, "evalue", str(error))
        tb = _ANSI.sub("", "\n".join(getattr(error, "traceback", []) or []))
        exc = StudyExecutionError(
            f"study {st.name!r} (profile {profile_name!r}) failed in {where}: "
            f"{ename}: {str(evalue).rstrip('.')}. The partial notebook, with the cell's traceback, is kept at "
            f"{landed_nb}{kept}",
            notebook=landed_nb,
            cell=ordinal,
            ename=ename,
            evalue=evalue,
        )
        exc.cell_traceback = tb  # type: ignore[attr-defined]
        raise exc
    if guard.interrupted:  # Ctrl-C in the instant between the last check and the install
        raise StudyInterruptedError(
            f"study {st.name!r} (profile {profile_name!r}) was interrupted after it had finished: the complete run "
            f"(status 'ok') is in {out_dir}",
            out_dir=out_dir,
        )
    figures = [out_dir / "figures" / p.name for p in figure_files]
    return RunResult(st.name, profile_name, out_dir, out_nb, metrics, run_record.provenance(), figures)
