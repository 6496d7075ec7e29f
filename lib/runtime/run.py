"""The study runner: validate parameters, execute a chapter with papermill, collect results.

One study is one Jupytext MyST notebook ``book/<study>/<study>.md`` plus parameter
files ``parameters/<study>/<profile>.yaml``. :func:`run_study` (also the command
``python -m lib run STUDY --profile NAME``) writes into its output directory:

``<study>.ipynb``
    the executed notebook (kept, with the failing cell marked, when a cell fails);
``metrics.json``
    every number the notebook recorded with :func:`lib.core.report.metric`;
``provenance.json``
    git commit, versions, device, seed, profile, parameter-file SHA-256, timing, status;
``figures/<name>.png``
    every figure the notebook glued with :func:`lib.core.report.figure` (other image outputs as
    ``cell<N>-<k>.png``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.core.report import GLUE_PREFIX, parse_number
from lib.core.repro import sha256_file
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
    "read_chapter",
    "chapter_parameters",
    "study_inputs",
    "DEFAULT_CELL_TIMEOUT",
]

#: Per-cell execution limit (seconds) when neither the call nor the profile sets one.
DEFAULT_CELL_TIMEOUT = 3600
_INSERTED_TAGS = {"provenance", "injected-parameters"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StudyError(LookupError):
    """Unknown study or profile, or an unusable parameter file (the message lists what exists)."""


class StudyExecutionError(RuntimeError):
    """A cell of a study notebook raised; the message names the study, the cell and the traceback."""

    def __init__(self, message: str, *, notebook: Path, cell: int | None, ename: str, evalue: str):
        super().__init__(message)
        self.notebook = notebook
        self.cell = cell
        self.ename = ename
        self.evalue = evalue


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
    """The checkout holding ``book/`` and ``parameters/`` (``$STUDIES_ROOT`` overrides)."""
    env = os.environ.get("STUDIES_ROOT")
    root = Path(env).expanduser().resolve() if env else Path(__file__).resolve().parents[2]
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
        path = Path(params_file)
        if not path.is_file():
            raise StudyError(f"parameter file {path} does not exist")
    else:
        if profile is None:
            raise StudyError("give a profile name or a parameter file")
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
    if "profile" in specs:
        if "profile" in values and params_file is None and values["profile"] != profile:
            raise ParameterError(
                f"{path}: declares profile {values['profile']!r} but is the file of profile {profile!r}"
            )
        params.setdefault("profile", name)
    return params, info, path, name


def _code_cell_ordinal(nb: Any, index: int) -> int:
    """1-based number of cell ``index`` among the chapter's own code cells (inserted cells not counted)."""
    n = 0
    for cell in nb.cells[: index + 1]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and not tags & _INSERTED_TAGS:
            n += 1
    return n


def _source_line(md_path: Path, source: str) -> int | None:
    """Line of ``md_path`` where a cell whose source is ``source`` starts (best effort)."""
    first = next((ln for ln in source.splitlines() if ln.strip()), None)
    if first is None:
        return None
    for i, line in enumerate(md_path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.rstrip() == first.rstrip():
            return i
    return None


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


def _environment_fingerprint() -> str:
    dists = sorted(
        f"{d.metadata['Name']}=={d.version}".lower() for d in importlib.metadata.distributions() if d.metadata["Name"]
    )
    return f"python {platform.python_version()}\n" + "\n".join(dists)


#: Suffixes of the library files a run can read (code, manifests, data tables).
_LIB_SUFFIXES = frozenset({".py", ".csv", ".json", ".yaml"})
#: Packages of ``lib/`` that every study's runs depend on (the rest of ``lib/`` is one package per study).
SHARED_PACKAGES: tuple[str, ...] = ("core", "runtime")
#: Files pinning the environment (a change re-runs everything).
ENV_FILES: tuple[str, ...] = ("requirements/lock.txt", "requirements/torch.txt")


def _lib_files(directory: Path, *, recursive: bool = True) -> list[Path]:
    files = directory.rglob("*") if recursive else directory.glob("*")
    return sorted(f for f in files if f.is_file() and f.suffix in _LIB_SUFFIXES and "__pycache__" not in f.parts)


def study_inputs(study: Study) -> list[Path]:
    """Every file a run of ``study`` reads, apart from its parameter file: its key and its workflow inputs.

    That is the chapter, the top-level modules of ``lib/``, the shared packages
    (:data:`SHARED_PACKAGES`), the study's own package ``lib/<study>/`` (when it has one) and
    the environment's lock files (:data:`ENV_FILES`, when present). A change to another study's
    package is not among them, so it leaves this study's runs fresh. The Snakefile declares
    exactly these files as the inputs of a run, and :func:`run_key` hashes them.
    """
    lib_dir = Path(__file__).resolve().parents[1]
    files = [study.notebook]
    files += _lib_files(lib_dir, recursive=False)
    for pkg in (*SHARED_PACKAGES, study.name):
        if (lib_dir / pkg).is_dir():
            files += _lib_files(lib_dir / pkg)
    checkout = lib_dir.parent
    files += [checkout / f for f in ENV_FILES if (checkout / f).is_file()]
    return files


def run_key(study: Study, params_path: Path, overrides: Mapping[str, Any] | None = None) -> str:
    """A hash of everything a run's result depends on: :func:`study_inputs`, parameters, overrides, environment.

    The book reuses an earlier run only when this key is unchanged (a notebook-only cache
    would keep stale results after a change to ``lib/`` or a parameter file); editing one
    study's package leaves the other studies' keys unchanged.
    """
    lib_dir = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in study_inputs(study):
        try:
            name = f.resolve().relative_to(lib_dir.parent).as_posix()
        except ValueError:  # the chapter of a collection outside this checkout
            name = f.name
        h.update(name.encode())
        h.update(f.read_bytes())
    h.update(params_path.read_bytes())
    h.update(json.dumps(dict(overrides or {}), sort_keys=True, default=str).encode())
    h.update(_environment_fingerprint().encode())
    return h.hexdigest()


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


def run_study(
    study: str,
    profile: str | None = "lab",
    *,
    overrides: Mapping[str, Any] | None = None,
    params_file: str | Path | None = None,
    out: str | Path | None = None,
    cell_timeout: int | None = None,
    progress: bool = True,
    log_output: bool = False,
    root: Path | None = None,
) -> RunResult:
    """Execute one study and write its notebook, metrics, provenance and figures.

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
        Output directory; default ``_runs/<study>/<profile>`` under the repository.
    cell_timeout : int, optional
        Seconds a single cell may run; default the profile's ``cell_timeout`` or
        :data:`DEFAULT_CELL_TIMEOUT`.
    progress, log_output : bool
        Show papermill's progress bar; stream cell output to the log.

    Raises
    ------
    StudyError, ParameterError
        Before anything runs, for an unknown study/profile or invalid parameters.
    StudyExecutionError
        When a cell fails; the partial notebook is kept in ``out``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = root or repo_root()
    st = get_study(study, root)
    nb = read_chapter(st.notebook)
    params, info, params_path, profile_name = resolve_parameters(
        st, profile, params_file=params_file, overrides=overrides, notebook=nb
    )
    out_dir = Path(out) if out is not None else root / "_runs" / st.name / profile_name
    out_dir.mkdir(parents=True, exist_ok=True)
    out_nb = out_dir / f"{st.name}.ipynb"
    timeout = cell_timeout or info.cell_timeout or DEFAULT_CELL_TIMEOUT

    params_sha = sha256_file(params_path)
    record = provenance(
        study=st.name,
        profile=profile_name,
        seed=params.get("seed"),
        params_sha256=params_sha,
        parameters=params,
        device=params.get("device", "auto"),
    )
    record["parameter_file"] = str(params_path)
    record["overrides"] = dict(overrides or {})
    nb.cells.insert(0, _provenance_cell(record))

    env_backup = {k: os.environ.get(k) for k in ("PYTHONPATH", "STUDIES_RUN_DIR", "STUDIES_ROOT", "MPLBACKEND")}
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as notebook outputs
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env_backup["PYTHONPATH"]]))
    os.environ["STUDIES_RUN_DIR"] = str(out_dir.resolve())
    os.environ["STUDIES_ROOT"] = str(root)
    t0 = time.perf_counter()
    error: PapermillExecutionError | None = None
    try:
        executed = papermill.execute_notebook(
            nb,
            str(out_nb),
            parameters=params,
            kernel_name="python3",
            language="python",
            cwd=str(st.notebook.parent),
            execution_timeout=timeout,
            progress_bar=progress,
            log_output=log_output,
            request_save_on_cell_execute=True,
        )
    except PapermillExecutionError as err:
        error = err
        import nbformat

        executed = nbformat.read(out_nb, as_version=4)
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    record["ended"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    record["duration_s"] = round(time.perf_counter() - t0, 2)
    record["status"] = "failed" if error else "ok"
    record["cell_timeout_s"] = timeout
    metrics = collect_metrics(executed)
    figures = export_figures(executed, out_dir / "figures")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out_dir / "provenance.json").write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")

    if error is not None:
        # papermill adds error banners to the notebook, so find the failed cell by its status
        index = next(
            (i for i, c in enumerate(executed.cells) if c.get("metadata", {}).get("papermill", {}).get("status") == "failed"),
            error.cell_index,
        )
        cell = executed.cells[index] if 0 <= index < len(executed.cells) else None
        ordinal = _code_cell_ordinal(executed, index)
        line = _source_line(st.notebook, cell.source) if cell is not None else None
        where = f"{st.notebook.relative_to(root)}" + (f" line {line}" if line else "")
        tb = _ANSI.sub("", "\n".join(error.traceback))
        raise StudyExecutionError(
            f"study {st.name!r} (profile {profile_name!r}) failed in code cell {ordinal} ({where}): "
            f"{error.ename}: {error.evalue}\n{tb}\nThe partial notebook is kept at {out_nb}",
            notebook=out_nb,
            cell=ordinal,
            ename=error.ename,
            evalue=error.evalue,
        )
    return RunResult(st.name, profile_name, out_dir, out_nb, metrics, record, figures)

