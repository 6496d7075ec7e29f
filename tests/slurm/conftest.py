"""A single-host SLURM test cluster (``tests/slurm/cluster.sh``) shared by the tests of this folder.

The cluster is started once per test session, also under ``pytest -n 2``: the xdist workers share it through a lock
file and a user count in the session's common temporary directory, and the last worker out stops it. Its job
records outlive the jobs (``MinJobAge``), so the tests read them with ``scontrol show job`` and ``sacct -c``
(the job completion log; the cluster has no slurmdbd).

On a machine without the Debian packages, without root, or with another SLURM configuration in the way, every test
here is skipped with the reason and the command that installs the packages.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).resolve().parent / "cluster.sh"
INSTALL = "apt-get install -y --no-install-recommends slurm-wlm munge"
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sacct", "sinfo", "srun")


@dataclass(frozen=True)
class Cluster:
    """A running test cluster: its directory and the environment its client commands need."""

    directory: Path

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    def env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` with ``SLURM_CONF`` of this cluster (and ``extra``)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), **extra}

    def command(self, *args: str) -> str:
        """Run a SLURM client command against this cluster; return its stdout."""
        proc = subprocess.run(list(args), capture_output=True, text=True, env=self.env(), timeout=60)
        assert proc.returncode == 0, f"{' '.join(args)} failed: {proc.stderr}"
        return proc.stdout

    def sacct(self, job_ids: list[str]) -> dict[str, dict[str, str]]:
        """``sacct -c`` (the job completion log) of ``job_ids``: {job id: {JobName, Partition, State, ...}}."""
        fields = ["JobID", "JobName", "Partition", "State", "ExitCode", "NCPUS", "Elapsed"]
        out = self.command("sacct", "-c", "--parsable2", "--noheader", f"--format={','.join(fields)}",
                           "-j", ",".join(job_ids))
        rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
        return {row["JobID"]: row for row in rows}

    def sacct_lines(self, job_ids: list[str]) -> str:
        """The human-readable ``sacct -c`` table of ``job_ids`` (for failure messages and the report)."""
        return self.command("sacct", "-c", "--format=JobID,JobName%40,Partition,State,ExitCode,NCPUS,Elapsed",
                            "-j", ",".join(job_ids))

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` of one job as {key: value} (finished jobs are kept for an hour)."""
        out = self.command("scontrol", "show", "job", "--oneliner", job_id)
        return dict(re.findall(r"(\S+?)=(\S*)", out))


def _skip_reason() -> str | None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"no SLURM test cluster: {', '.join(missing)} not installed; install with `{INSTALL}` (as root)"
    if os.geteuid() != 0:
        return "no SLURM test cluster: slurmd and /run/slurm/conf need root"
    if Path("/etc/slurm/slurm.conf").exists():
        return "no SLURM test cluster: /etc/slurm/slurm.conf exists, jobs would use that cluster's configuration"
    link = Path("/run/slurm/conf")
    if link.is_symlink() and link.exists():
        return f"no SLURM test cluster: another one is running ({link} -> {os.readlink(link)})"
    return None


def _free_port_pair() -> int:
    """A port p with p and p + 1 free on localhost (slurmctld and slurmd)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 65000:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free TCP ports on localhost")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's test cluster (started on first use; the last xdist worker to finish stops it)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # common to all workers of this session
    lock, users, current = base / "slurm.lock", base / "slurm.users", base / "slurm.current"
    with _locked(lock):
        count = int(users.read_text() or 0) if users.exists() else 0
        if count == 0:
            reason = _skip_reason()
            if reason:
                pytest.skip(reason)
            directory = Path(tempfile.mkdtemp(prefix="slurm-", dir=base))
            proc = subprocess.run(["bash", str(CLUSTER_SH), "start", str(directory)], capture_output=True,
                                  text=True, timeout=120,
                                  env={**os.environ, "SLURM_TEST_PORT": str(_free_port_pair())})
            if proc.returncode != 0:
                subprocess.run(["bash", str(CLUSTER_SH), "stop", str(directory)], capture_output=True, timeout=60)
                pytest.fail(f"cluster.sh start failed:\n{proc.stdout}{proc.stderr}")
            current.write_text(str(directory))
        directory = Path(current.read_text())
        users.write_text(str(count + 1))
    try:
        yield Cluster(directory)
    finally:
        with _locked(lock):
            count = int(users.read_text()) - 1
            users.write_text(str(count))
            if count == 0:
                subprocess.run(["bash", str(CLUSTER_SH), "stop", str(directory)], capture_output=True, timeout=120)
