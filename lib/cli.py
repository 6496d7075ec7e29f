"""Command line of the study collection: ``studies`` (console script) or ``python -m lib``.

::

    studies list                                  # studies, profiles, expected run time, device
    studies status [--profile lab]                # every run: current, stale (and why), failed, interrupted, missing
    studies params pgnaa                          # a study's parameters: type and default
    studies run pgnaa --profile lab --set epochs=3 --out results/pgnaa-lab
    studies run pgnaa --params my_params.yaml     # your own parameter file
    studies run pgnaa --out old_results --force   # replace a folder that is not an earlier run (never the checkout)
    studies book --profile lab                    # run every chapter and build the HTML book
    studies check-book                            # open every page of _build/html in headless Chromium, check it
    studies publish                               # _build/html onto the gh-pages branch (ghp-import) and push
    studies export pgnaa --student handout/       # notebook + MyST without solutions (--instructor: with)
    studies data list | fetch NAME | verify NAME  # the dataset registry (fetch: download, resume, verify)
    studies run nuclei --profile paper --smoke    # a paper profile with short loops (_profile.smoke)
    studies workflow table --profile paper        # headline numbers of every study's run at a profile
    studies workflow points pgnaa sweep_epochs     # the points of a sweep file (run them with snakemake)
    studies workflow gather                       # every run under _runs/ into _runs/_results/*.csv
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from lib.runtime.params import ParameterError, parse_override
from lib.runtime.run import (
    StudyError,
    StudyExecutionError,
    StudyInterruptedError,
    chapter_parameters,
    get_study,
    list_studies,
    repo_root,
    run_study,
)

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(prog="studies", description="Run the studies of the reproducible study collection.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute one study with a parameter profile")
    r.add_argument("study")
    r.add_argument("--profile", default=None, help="parameter profile (default: lab)")
    r.add_argument("--params", type=Path, default=None,
                   help="your own YAML parameter file instead of a profile (not together with --profile)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (value read as YAML); repeatable")
    r.add_argument("--out", type=Path, default=None,
                   help="output directory (default: _runs/<study>/<profile>); only an empty folder or an earlier "
                        "run of the study is replaced")
    r.add_argument("--timeout", type=_positive_int, default=None, help="per-cell time limit in seconds (> 0)")
    r.add_argument("--smoke", action="store_true",
                   help="apply the profile's _profile.smoke overrides (short loops, full model and input sizes)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--log-output", action="store_true", help="stream the notebook's output to the terminal")
    r.add_argument("--force", action="store_true",
                   help="replace a non-empty --out folder that is not an earlier run of the study (never the "
                        "checkout or a folder above it, the current or home folder, book/, parameters/ or _runs/)")

    sub.add_parser("list", help="list studies, their profiles, expected run time and device")

    s = sub.add_parser("status", help="where every run stands: current, stale (which input changed), failed, "
                                      "interrupted or missing")
    s.add_argument("--profile", action="append", default=None,
                   help="only this profile or sweep (repeatable; default: every profile and sweep point)")
    s.add_argument("--study", action="append", default=None, help="only these studies (repeatable)")
    s.add_argument("--runs", type=Path, default=None, help="runs directory (default: _runs)")

    pa = sub.add_parser("params", help="show a study's parameters (name, type, default)")
    pa.add_argument("study")

    b = sub.add_parser("book", help="run every chapter at a profile and build the HTML book")
    b.add_argument("--profile", default="lab")
    b.add_argument("--force", action="store_true", help="re-execute even when nothing changed")
    b.add_argument("--study", action="append", default=None, help="only these studies (repeatable)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument("--cores", type=int, default=None,
                   help="chapters run through the workflow this many at a time (default: this machine's cores)")

    _add_site_commands(sub)

    d = sub.add_parser("data", help="the dataset registry")
    d.add_argument("action", choices=["list", "fetch", "verify"])
    d.add_argument("name", nargs="?")
    d.add_argument("--repair", action="store_true", help="fetch: remove an invalid cache copy and download it again")

    w = sub.add_parser("workflow", help="helpers of the Snakemake workflow (workflow/Snakefile): sweeps, tables")
    wsub = w.add_subparsers(dest="action", required=True)
    wp = wsub.add_parser("points", help="list the points of a sweep file with their --set overrides")
    wp.add_argument("study")
    wp.add_argument("sweep", help="name of the sweep file parameters/<study>/<sweep>.yaml")
    wg = wsub.add_parser("gather", help="gather every run's metrics and provenance into CSV tables")
    wg.add_argument("--runs", type=Path, default=None, help="runs directory (default: _runs)")
    wg.add_argument("--out", type=Path, default=None, help="output directory (default: <runs>/_results)")
    wt = wsub.add_parser("table", help="headline numbers of each study's run at a profile (from metrics.json)")
    wt.add_argument("--profile", default="paper")
    wt.add_argument("--runs", type=Path, default=None, help="runs directory (default: _runs)")
    wt.add_argument("--metrics", type=int, default=6, help="numbers shown per study (default 6)")
    return p


def _add_site_commands(sub: argparse._SubParsersAction) -> None:
    cb = sub.add_parser("check-book", help="open every page of the built book in headless Chromium and check it")
    cb.add_argument("--html", type=Path, default=None, help="the built site (default: _build/html)")
    cb.add_argument("--screenshot", type=Path, default=None, help="PNG of the first page with maths, scrolled to it")
    pu = sub.add_parser("publish", help="put the built book on the gh-pages branch (ghp-import) and push it")
    pu.add_argument("--html", type=Path, default=None, help="the built site (default: _build/html)")
    pu.add_argument("--remote", default="origin")
    pu.add_argument("--branch", default="gh-pages")
    pu.add_argument("--no-push", action="store_true", help="commit the branch locally only")
    ex = sub.add_parser("export", help="a chapter as notebook + MyST for a lab, --student (no solutions) "
                                       "or --instructor")
    ex.add_argument("study")
    edition = ex.add_mutually_exclusive_group(required=True)
    edition.add_argument("--student", type=Path, metavar="DIR", help="write the edition without solutions here")
    edition.add_argument("--instructor", type=Path, metavar="DIR", help="write the edition with solutions here")
    ex.add_argument("--overwrite", action="store_true", help="replace existing files")


def _cmd_site(args: argparse.Namespace) -> int:
    if args.command == "check-book":
        from lib.site.browser_check import BrowserUnavailableError, check_site

        try:
            report = check_site(args.html or repo_root() / "_build" / "html", screenshot=args.screenshot)
        except (BrowserUnavailableError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(report.summary())
        if report.screenshot is not None:
            print(f"screenshot: {report.screenshot}")
        return 0 if report.ok else 1
    if args.command == "publish":
        from lib.site.publish import PublishError, publish

        try:
            commit = publish(args.html, remote=args.remote, branch=args.branch, push=not args.no_push)
        except PublishError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{args.branch} is at {commit}" + ("" if args.no_push else f", pushed to {args.remote}"))
        return 0
    from lib.site.export import ExportError, export_study

    try:
        done = export_study(args.study, args.student or args.instructor, student=args.student is not None,
                            overwrite=args.overwrite)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{done.study} ({done.edition} edition, {done.exercises} exercises, "
          f"{done.solutions_removed} solutions removed): {done.notebook} and {done.markdown}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return value


def _cmd_list() -> int:
    rows = []
    for st in list_studies():
        for prof in st.profiles:
            info = st.profile_info(prof)
            rows.append((st.name, prof, info.expected_runtime, info.device, info.description))
    if not rows:
        print("no studies yet: add book/<study>/<study>.md and parameters/<study>/<profile>.yaml")
        return 0
    widths = [max(len(str(r[i])) for r in rows + [("study", "profile", "runtime", "device", "")]) for i in range(4)]
    header = ("study", "profile", "runtime", "device", "description")
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
    return 0


def _cmd_params(name: str) -> int:
    st = get_study(name)
    specs = chapter_parameters(st)
    width = max(len(s) for s in specs)
    for spec in specs.values():
        check = f"  ({spec.constraint_text})" if spec.constraint_text else ""
        print(f"{spec.name.ljust(width)}  {spec.type_text:<16} default {spec.default!r}{check}")
    return 0


def _cmd_data(action: str, name: str | None, *, repair: bool = False) -> int:
    from lib.core import registry

    if action == "list":
        for n in registry.names():
            ds = registry.get(n)
            how = "no public source" if ds.no_public_source else "downloadable"
            print(f"{n:<20} {len(ds.files):>5} files  {how:<17} {ds.description}")
        return 0
    if name is None:
        raise StudyError(f"`data {action}` needs a dataset name; registered: {', '.join(registry.names())}")
    ds = registry.get(name)
    if action == "fetch":
        root = registry.download_dataset(name, repair=repair)
        print(f"{name}: all {len(ds.files)} files verified at {root}")
        return 0
    root = registry.fetch(name, download=False)
    print(f"{name}: all {len(ds.files)} files verified at {root}")
    return 0


def _cmd_workflow(args: argparse.Namespace) -> int:
    from lib.pages import tables
    from lib.runtime import sweep

    if args.action == "points":
        sw = sweep.load_sweep(get_study(args.study), args.sweep)
        for pt in sw.points:
            print(f"{pt.id}  " + " ".join(f"--set {a}" for a in pt.set_args()))
        return 0
    if args.action == "gather":
        runs = _runs_folder(args.runs)
        written = tables.write_tables(runs, args.out)
        for path in written:
            print(path)
        return 0
    return _cmd_table(args)


def _cmd_status(args: argparse.Namespace) -> int:
    """``studies status``: one line per run with its state, time, data source and why it is not current."""
    from lib.runtime.status import format_states, run_states

    root = repo_root()
    runs = _runs_folder(args.runs) if args.runs is not None else root / "_runs"
    known = {s.name for s in list_studies(root)}
    for name in args.study or []:
        if name not in known:
            raise StudyError(f"unknown study {name!r}; available studies: {', '.join(sorted(known))}")
    states = run_states(root, profiles=args.profile, studies=args.study, runs=runs)
    if args.profile and not states:
        raise StudyError(f"no study has the profile or sweep {', '.join(args.profile)}; `studies list` shows them")
    print(format_states(states))
    return 0


def _runs_folder(runs: Path | None) -> Path:
    """``--runs`` (default ``_runs`` of the checkout): an existing folder, or a clear error."""
    folder = runs if runs is not None else repo_root() / "_runs"
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise StudyError(f"--runs {folder} {what}; give the folder the runs were written to "
                         f"(default: {repo_root() / '_runs'}, made by `studies run` and the workflow)")
    return folder


def _cmd_table(args: argparse.Namespace) -> int:
    """Headline numbers of ``_runs/<study>/<profile>/metrics.json`` for every study, with status and data source."""

    from lib.runtime.record import RunRecord

    runs = _runs_folder(args.runs)
    rows = []
    for st in list_studies():
        record = RunRecord.read(runs / st.name / args.profile)
        if record is None:
            rows.append((st.name, "not run", "", "", ""))
            continue
        sources = ", ".join(f"{k}: {v.split(' (')[0]}" for k, v in (record.data_sources or {}).items()) or "-"
        shown = "; ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in list(record.metrics.items())[: args.metrics])
        dev = record.device.get("device_name") or record.device.get("device") or "?"
        took = f"{record.duration_s} s" if record.duration_s is not None else "? s"
        rows.append((st.name, record.status, f"{took} on {dev}", sources, shown))
    header = ("study", "status", "time", "data", f"first {args.metrics} metrics")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
    return 0 if all(r[1] == "ok" for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    0: success; 1: a study failed, timed out or data are corrupt/unavailable; 2: bad input
    (nothing ran); 130: interrupted. Every error is one paragraph on stderr, never a traceback.
    """
    args = build_parser().parse_args(argv)
    _honour_ctrl_c()
    try:
        return _dispatch(args)
    except (StudyError, ParameterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    except StudyInterruptedError as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if args.command == "data" and args.action == "fetch":
            print(f"interrupted: the download of {args.name!r} was interrupted; the files fetched so far are kept "
                  f"in the cache, and running `studies data fetch {args.name}` again resumes it", file=sys.stderr)
        elif args.command == "run":
            print("interrupted: nothing was recorded (the run had not started)", file=sys.stderr)
        else:
            print(f"interrupted: `studies {args.command}` was stopped before it finished", file=sys.stderr)
        return 130
    except StudyExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # data errors, book build failures: say what failed, no traceback soup
        from lib.core.registry import ChecksumError, DataUnavailableError

        if isinstance(err, (ChecksumError, DataUnavailableError, RuntimeError, OSError, ValueError)):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise


def _honour_ctrl_c() -> None:
    """Give SIGINT its default handler when it was inherited ignored (a background job of a script), so Ctrl-C works."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _cmd_list()
    if args.command == "status":
        return _cmd_status(args)
    if args.command == "params":
        return _cmd_params(args.study)
    if args.command == "data":
        return _cmd_data(args.action, args.name, repair=args.repair)
    if args.command == "workflow":
        return _cmd_workflow(args)
    if args.command in ("check-book", "publish", "export"):
        return _cmd_site(args)
    if args.command == "book":
        from lib.site.book import build_book

        build_book(args.profile, force=args.force, studies=args.study, progress=not args.quiet, cores=args.cores)
        return 0
    if args.profile is not None and args.params is not None:
        raise StudyError(
            f"give either --profile or --params, not both: --params {args.params} is a parameter file used instead "
            f"of a profile (its run is named by the file's `profile:` key or its file name), so --profile "
            f"{args.profile} would be ignored. Drop one of them"
        )
    overrides = dict(parse_override(o) for o in args.overrides)
    profile = args.profile if args.profile is not None else (None if args.params else "lab")
    res = run_study(
        args.study, profile, overrides=overrides, params_file=args.params, out=args.out, smoke=args.smoke,
        cell_timeout=args.timeout, progress=not args.quiet, log_output=args.log_output, force=args.force,
    )
    print(f"{res.study}/{res.profile}: ok in {res.provenance['duration_s']} s -> {res.out_dir}")
    for name, source in (res.provenance.get("data_sources") or {}).items():
        print(f"  data {name}: {source}")
    for k, v in res.metrics.items():
        print(f"  {k} = {v}")
    return 0
