"""Every command README.md shows is run by a test exactly as written, or is listed here with the reason it cannot be.

The commands are taken from README.md itself: each line of a ``bash`` code block (without its trailing comment) and
each inline code span that starts with a command (``make``, ``.venv/bin/...``, ``studies``, ``python -m lib``,
``jupytext``, ``papermill``, ``snakemake``). Each one must appear either in :data:`RUN_BY` (the tests that run it;
each test id must exist) or in :data:`NOT_RUN` (why CI cannot run it as written, and the tests that run the same
thing at a smaller scale), and neither table may name a command the README no longer shows.

The tests below run the README's own text through ``bash`` from the repository root, as a reader would: the
``studies`` commands, ``make workflow-dry``, the data-fetch commands of datasets without a public source, and the
papermill-only command on every chapter at ``ci`` (the README shows it at ``lab``; only the file name and the
output path are swapped).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = REPO / ".venv" / "bin"
STUDIES = ("nuclei", "perfusion", "pgnaa", "radiative")
PAPERMILL = (".venv/bin/jupytext --to ipynb -o - book/pgnaa/pgnaa.md | .venv/bin/papermill - out.ipynb "
             "-f parameters/pgnaa/lab.yaml -k python3")

_COMMAND_START = re.compile(r"^(make|studies|jupytext|papermill|snakemake|python3?\s+-m\s+lib|\.venv/bin/\S+|\.ci/\S+)"
                            r"(\s|$)")

#: command -> the tests that run it exactly as written ("path::function"; the function must exist there)
RUN_BY: dict[str, list[str]] = {
    ".venv/bin/studies list": ["tests/test_readme_commands.py::test_studies_list_as_documented"],
    ".venv/bin/studies params pgnaa": ["tests/test_readme_commands.py::test_studies_params_as_documented"],
    ".venv/bin/studies run pgnaa --params my_parameters.yaml": [
        "tests/test_readme_commands.py::test_studies_run_with_my_parameters_as_documented",
    ],
    PAPERMILL: ["tests/test_readme_commands.py::test_papermill_command_as_documented"],
    "make workflow-dry": ["tests/test_readme_commands.py::test_make_workflow_dry_as_documented"],
    ".venv/bin/studies status --profile lab": ["tests/test_readme_commands.py::test_studies_status_as_documented"],
    ".venv/bin/studies data fetch rt-reference": [
        "tests/test_readme_commands.py::test_data_fetch_without_public_source_as_documented",
    ],
    ".venv/bin/studies data fetch unitobrain-samples": [
        "tests/test_readme_commands.py::test_data_fetch_without_public_source_as_documented",
    ],
    "make gpu-check": ["tests/test_gpucheck.py::test_make_gpu_check_refuses_in_one_line_without_cuda"],
}

#: command -> (why CI cannot run it as written, the tests that run the same thing at a smaller scale)
NOT_RUN: dict[str, tuple[str, list[str]]] = {
    "make book": (
        "every chapter at lab (26 min 21 s on 2 cores, fresh clone, Dec 2026) and the HTML build",
        ["tests/site/test_book.py::test_fixture_book_builds_with_glued_number",
         "tests/site/test_book.py::test_a_study_depends_on_core_runtime_and_its_own_package_only",
         "tests/pgnaa/test_chapter.py::test_pgnaa_ci", "tests/nuclei/test_chapter.py::test_nuclei_ci_real_subset",
         "tests/perfusion/test_chapter.py::test_metrics_finite", "tests/radiative/test_chapter.py::test_ci_all_finite"],
    ),
    "make book PROFILE=paper": (
        "the four paper profiles: hours on a GPU",
        ["tests/runtime/test_smoke.py::test_paper_profile_smoke_run"],
    ),
    "make test": (
        "the test suite itself, which CI runs (.ci/run)",
        [],
    ),
    "make test-all": (
        "make test plus the slow tests (lab goals, paper --smoke runs): more than an hour",
        ["tests/runtime/test_smoke.py::test_paper_profile_smoke_run"],
    ),
    "make venv": (
        "rebuilds the environment that runs the tests (every make target runs it first)",
        ["tests/test_console_script.py::test_studies_help"],
    ),
    ".venv/bin/studies run pgnaa --profile lab --set seed=3 --set epochs=20 --out results/pgnaa-seed3": (
        "the pgnaa chapter at lab for 20 epochs (about 8 min on 2 cores)",
        ["tests/pgnaa/test_chapter.py::test_pgnaa_ci", "tests/runtime/test_run.py::test_overrides_and_seed_are_applied",
         "tests/test_cli_errors.py::test_a_run_with_set_never_lands_in_the_profile_folder"],
    ),
    ".venv/bin/studies data fetch dsb2018": (
        "downloads from GitHub (CI is offline); the same code runs against a local fake upstream",
        ["tests/core/test_download.py::test_dsb_fetch_end_to_end_matches_the_real_checksums"],
    ),
    ".venv/bin/studies data fetch nist-pgaa": (
        "downloads from GitHub (CI is offline); the same code runs against a local fake upstream",
        ["tests/core/test_download.py::test_nist_pgaa_fetch_end_to_end"],
    ),
    "studies run <study> --profile paper": (
        "a placeholder for a study; a paper profile needs a GPU for hours",
        ["tests/runtime/test_smoke.py::test_paper_profile_smoke_run"],
    ),
    "studies run": (
        "names the command, not a line to run",
        ["tests/pgnaa/test_chapter.py::test_pgnaa_ci"],
    ),
    "make workflow CORES=4": (
        "ci and lab of every study plus every sweep (hours on 2 cores)",
        ["tests/runtime/test_workflow.py::test_real_run_then_nothing_then_only_the_changed_study",
         "tests/runtime/test_workflow.py::test_whole_repository_dry_run"],
    ),
    ".venv/bin/snakemake --cores 16 --resources gpu=1 --config profiles=[paper]": (
        "the paper profiles on a 16-core GPU box",
        ["tests/runtime/test_workflow.py::test_dry_run_selects_profiles_and_studies",
         "tests/runtime/test_smoke.py::test_paper_profile_smoke_run"],
    ),
    ".venv/bin/snakemake --workflow-profile workflow/profiles/slurm --config profiles=[paper]": (
        "needs a SLURM cluster with a GPU partition; tests/slurm runs a single-host cluster (slow tests, .ci/run)",
        ["tests/runtime/test_workflow.py::test_slurm_profile_dry_run",
         "tests/slurm/test_slurm_workflow.py::test_every_job_through_sbatch_with_the_profiles_resources_then_nothing"],
    ),
    "make gpu-bundle": (
        "downloads about 60 MB of wheels from PyPI (CI is offline); the same code builds a data-only bundle",
        ["tests/test_gpucheck.py::test_data_bundle_builds_verifies_and_plans_under_the_limit",
         "tests/test_gpucheck.py::test_downloaded_pure_python_wheels_install_and_import_in_a_clean_venv",
         "tests/test_gpucheck.py::test_the_built_bundle_runs_a_notebook_with_papermill_in_a_clean_python_312"],
    ),
    "python -m lib run STUDY ...": (
        "the shape of a workflow job, with placeholders",
        ["tests/runtime/test_workflow.py::test_real_run_then_nothing_then_only_the_changed_study"],
    ),
}


def readme_commands(text: str) -> list[str]:
    """The commands of a README: lines of ``bash`` code blocks and inline code spans that start with a command.

    A one-word span (`studies`, `make`) names a tool in prose; a command has at least one argument.
    """
    out: list[str] = []
    prose: list[str] = []
    in_block, bash = False, False
    for line in text.splitlines():
        fence = re.match(r"^\s*(```+|~~~+)\s*(\w*)", line)
        if fence:
            in_block, bash = (True, fence.group(2) in ("bash", "sh", "shell", "console")) if not in_block else (
                False, False)
            continue
        if in_block:
            if bash and line.strip() and not line.lstrip().startswith("#"):
                out.append(" ".join(re.sub(r"\s+#\s.*$", "", line).split()))
            continue
        prose.append(line)
    for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", "\n".join(prose)):
        cmd = " ".join(span.split())
        if " " in cmd and _COMMAND_START.match(cmd):
            out.append(cmd)
    return list(dict.fromkeys(out))


def _test_exists(test_id: str) -> bool:
    path, _, name = test_id.partition("::")
    file = REPO / path
    if not file.is_file():
        return False
    tree = ast.parse(file.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree))


def documented(cmd: str) -> str:
    """``cmd`` as README.md shows it (fails when the README no longer shows it)."""
    assert cmd in readme_commands(README.read_text(encoding="utf-8")), f"README.md no longer shows `{cmd}`"
    return cmd


def _bash(cmd: str, *, cwd: Path = REPO, env: dict[str, str] | None = None,
          timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def _need_venv() -> None:
    if not (VENV_BIN / "studies").is_file() or Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("the README's commands use the project's .venv; run the tests with .venv/bin/python (make test)")


# --- the tables ---------------------------------------------------------------------------------------------------


def test_extraction():
    text = (
        "Run `make x` or `.venv/bin/studies list` but not `_runs/<study>`, `make` or `seed`.\n"
        "```bash\nmake a   # comment\n\n# only a comment\n.venv/bin/snakemake -n\n```\n"
        "```yaml\nmake: not a command\n```\n"
    )
    assert readme_commands(text) == ["make a", ".venv/bin/snakemake -n", "make x", ".venv/bin/studies list"]


def test_every_readme_command_is_run_or_explained():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 10
    unaccounted = [c for c in commands if c not in RUN_BY and c not in NOT_RUN]
    assert unaccounted == [], (
        f"README.md shows {unaccounted}; run each in a test exactly as written (RUN_BY) or say in NOT_RUN why CI "
        "cannot and which tests run the same thing at a smaller scale"
    )
    stale = sorted((set(RUN_BY) | set(NOT_RUN)) - set(commands))
    assert stale == [], f"RUN_BY/NOT_RUN name commands README.md no longer shows: {stale}"
    assert not set(RUN_BY) & set(NOT_RUN)


def test_every_named_test_exists():
    ids = [t for tests in RUN_BY.values() for t in tests] + [t for _, tests in NOT_RUN.values() for t in tests]
    missing = sorted({t for t in ids if not _test_exists(t)})
    assert missing == [], f"tests named in RUN_BY/NOT_RUN do not exist: {missing}"
    assert all(reason for reason, _ in NOT_RUN.values())
    assert not _test_exists("tests/test_readme_commands.py::test_no_such_test")


# --- the README's commands, run as written -----------------------------------------------------------------------


def test_studies_list_as_documented():
    _need_venv()
    out = _bash(documented(".venv/bin/studies list"))
    assert out.returncode == 0, out.stderr
    rows = {tuple(line.split()[:2]) for line in out.stdout.splitlines()[1:]}
    for study in STUDIES:
        for profile in ("ci", "lab", "paper"):
            assert (study, profile) in rows, out.stdout


def test_studies_params_as_documented():
    _need_venv()
    out = _bash(documented(".venv/bin/studies params pgnaa"))
    assert out.returncode == 0, out.stderr
    assert re.search(r"^n_test_per_class\s+int\s+default 20\s+\(min 1\)$", out.stdout, re.M), out.stdout


def test_studies_run_with_my_parameters_as_documented(tmp_path):
    """The README's ``--params`` line with a user's file that breaks a constraint: refused before anything runs."""
    _need_venv()
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    params = yaml.safe_load((REPO / "parameters/pgnaa/ci.yaml").read_text(encoding="utf-8"))
    params.pop("profile")
    params["n_test_per_class"] = 0
    (tmp_path / "my_parameters.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "STUDIES_ROOT": str(REPO)}
    out = _bash(documented(".venv/bin/studies run pgnaa --params my_parameters.yaml"), cwd=tmp_path, env=env,
                timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "my_parameters.yaml" in out.stderr and "'n_test_per_class' must satisfy `min 1`, got 0" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (REPO / "_runs" / "pgnaa" / "my_parameters").exists()


def test_data_fetch_without_public_source_as_documented(tmp_path):
    """With no copy in the cache or a mirror, these datasets say where they come from (exit 1, one paragraph)."""
    _need_venv()
    from lib.core import registry

    env = {k: v for k, v in os.environ.items() if k != registry.MIRROR_ENV}
    env[registry.CACHE_ENV] = str(tmp_path / "cache")
    for name in ("rt-reference", "unitobrain-samples"):
        out = _bash(documented(f".venv/bin/studies data fetch {name}"), env=env, timeout=120)
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"dataset {name!r} has no public source" in out.stderr and "Traceback" not in out.stderr


def test_make_workflow_dry_as_documented():
    _need_venv()
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    stale = subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO, capture_output=True, timeout=60)
    if stale.returncode != 0:
        pytest.skip("the .venv stamp is older than pyproject.toml or the lock files: `make venv` first (make test "
                    "does); otherwise make workflow-dry would rebuild the environment the tests run in")
    out = _bash(documented("make workflow-dry"), timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "Nothing to be done" in text or re.search(r"^\s*gather\s+1$", text, re.M), text[-3000:]
    # it would run exactly the runs of its profiles (ci, lab and the sweeps) that `studies status` does not call current
    from lib.runtime.status import run_states
    from lib.runtime.sweep import list_sweeps

    profiles = ["ci", "lab", *(sw.name for sw in list_sweeps(REPO))]
    not_current = {s.name for s in run_states(REPO, profiles=profiles) if s.state != "current"}
    assert set(re.findall(r"output: _runs/([^,\s]+)/[^/,\s]+\.ipynb", text)) == not_current


def test_studies_status_as_documented():
    _need_venv()
    out = _bash(documented(".venv/bin/studies status --profile lab"), timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["run", "state", "time", "data", "why"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:-1]}
    assert sorted(rows) == [f"{s}/lab" for s in STUDIES]
    assert set(rows.values()) <= {"current", "stale", "failed", "interrupted", "missing"}
    assert re.fullmatch(r"(\d+ (current|stale|failed|interrupted|missing)(, )?)+", lines[-1]), lines[-1]


@pytest.mark.parametrize("study", STUDIES)
def test_papermill_command_as_documented(study, tmp_path):
    """The README's papermill line, at ``ci`` and for every chapter, from the repository root (the kernel's cwd)."""
    _need_venv()
    cmd = documented(PAPERMILL)
    out_nb = tmp_path / "out.ipynb"
    cmd = (cmd.replace("book/pgnaa/pgnaa.md", f"book/{study}/{study}.md")
              .replace("parameters/pgnaa/lab.yaml", f"parameters/{study}/ci.yaml")
              .replace(" out.ipynb ", f" {out_nb} "))
    assert f"book/{study}/{study}.md" in cmd and f"parameters/{study}/ci.yaml" in cmd and str(out_nb) in cmd
    env = dict(os.environ)
    if "OMP_NUM_THREADS" in env:  # what the runner does for Numba; papermill alone does not
        env.setdefault("NUMBA_NUM_THREADS", env["OMP_NUM_THREADS"])
    done = _bash(cmd, env=env, timeout=600)
    assert done.returncode == 0, f"{cmd}\n{done.stderr[-4000:]}"
    nb = nbformat.read(out_nb, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    values = {}
    for stmt in ast.parse(injected[0].source).body:
        if isinstance(stmt, ast.Assign):
            values[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    expected = yaml.safe_load((REPO / f"parameters/{study}/ci.yaml").read_text(encoding="utf-8"))
    expected.pop("_profile", None)
    assert {k: (v, type(v)) for k, v in values.items() if k in expected} == {
        k: (v, type(v)) for k, v in expected.items()}
