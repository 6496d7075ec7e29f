#!/usr/bin/env bash
# A single-host SLURM cluster for tests and for trying the workflow's SLURM profile by hand: a private munged,
# slurmctld and slurmd on this machine, every file (configuration, state, spool, logs, sockets) in one directory.
#
#   tests/slurm/cluster.sh start DIR     write DIR/slurm.conf (+ gres.conf, munge key), start the daemons, wait
#                                        until the node is idle; prints the line to export SLURM_CONF
#   tests/slurm/cluster.sh stop DIR      stop the daemons started with DIR (by their pid files)
#   tests/slurm/cluster.sh status DIR    sinfo of that cluster
#
# Then, in the same shell:  export SLURM_CONF=DIR/slurm.conf   (sbatch, squeue, sacct, scontrol use it).
#
# The cluster: one node (this host, its detected cores and memory) in two partitions, `cpu` (default) and `gpu`.
# The node advertises one GPU as a generic resource (gres/gpu, File=/dev/null) so that a job's --gres=gpu:1 is
# scheduled and recorded like on a real GPU node; nothing actually gives the job a GPU. No slurmdbd: `sacct -c`
# reads the controller's job completion log (JobCompType=jobcomp/filetxt), and the controller keeps finished jobs
# for MinJobAge=3600 s, so that `squeue --states=all` (the workflow's status command here) and `scontrol show job`
# still see them. Job steps inside a job find the configuration through /run/slurm/conf (a link to DIR, removed
# by stop): the workflow's job step runs `srun` without SLURM_CONF in its environment.
#
# Requires the Debian packages (root):  apt-get install -y --no-install-recommends slurm-wlm munge
# Memory is scheduled, not enforced (no cgroups); the node advertises at least 16384 MB (config_overrides).
# Environment: SLURM_TEST_CPUS (default: all detected), SLURM_TEST_MEM_MB (default: detected RealMemory),
# SLURM_TEST_PORT (first of two TCP ports, default 6917).
set -euo pipefail

usage() { sed -n '2,/^set /{/^#/p}' "$0" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

need() {
    local missing=()
    for exe in munged slurmctld slurmd sbatch scontrol sinfo; do
        command -v "$exe" > /dev/null || missing+=("$exe")
    done
    if (( ${#missing[@]} )); then
        echo "cluster.sh: missing ${missing[*]}; install: apt-get install -y --no-install-recommends slurm-wlm munge" >&2
        exit 3
    fi
}

stop_pid() {  # stop_pid PIDFILE: TERM, wait up to 10 s, then KILL
    local pidfile=$1 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if [[ -n $pid ]] && kill -0 "$pid" 2> /dev/null; then
        kill -TERM "$pid" 2> /dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2> /dev/null && kill -KILL "$pid" 2> /dev/null || true
    fi
    rm -f "$pidfile"
}

case $cmd in
start)
    need
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -f $dir/slurmctld.pid ]] && kill -0 "$(cat "$dir/slurmctld.pid")" 2> /dev/null; then
        echo "cluster.sh: a cluster is already running in $dir (stop it first)" >&2
        exit 1
    fi
    # Client commands inside a job find this configuration too: the workflow's job step (the jobstep executor
    # plugin) calls `srun` with SLURM_* variables, SLURM_CONF included, removed from its environment, so srun
    # falls back to the slurmd configuration cache /run/slurm/conf (what a configless slurmd creates).
    if [[ -e /etc/slurm/slurm.conf ]]; then
        echo "cluster.sh: /etc/slurm/slurm.conf exists (a real SLURM configuration); jobs would use it, not this one" >&2
        exit 1
    fi
    if [[ -e /run/slurm/conf || -L /run/slurm/conf ]]; then
        target=$(readlink /run/slurm/conf || true)
        if [[ ! -L /run/slurm/conf || ( -e $target && $target != "$dir" ) ]]; then
            echo "cluster.sh: /run/slurm/conf is in use (-> ${target:-a directory}); stop that cluster first" >&2
            exit 1
        fi
        rm -f /run/slurm/conf
    fi
    mkdir -p "$dir"/{munge,state,spool,log}
    chmod 755 "$dir/munge"
    host=$(hostname -s)
    detected=$(slurmd -C | head -1)
    cpus=${SLURM_TEST_CPUS:-$(sed -E 's/.* CPUs=([0-9]+).*/\1/' <<< "$detected")}
    mem=${SLURM_TEST_MEM_MB:-$(sed -E 's/.* RealMemory=([0-9]+).*/\1/' <<< "$detected")}
    (( mem >= 16384 )) || mem=16384  # so that the profile's 8000 MB jobs schedule on a small CI machine
    port=${SLURM_TEST_PORT:-6917}
    user=$(id -un)

    trap 'echo "cluster.sh: start failed; logs in $dir/log" >&2; tail -n 5 "$dir"/log/*.log >&2; "$0" stop "$dir"' ERR
    # munge: a private key and socket, so that nothing of the host's munge (if any) is used or changed
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"

    cat > "$dir/slurm.conf" << EOF
# single-host test cluster written by tests/slurm/cluster.sh
ClusterName=studies-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
MinJobAge=3600
SchedulerParameters=sched_interval=2
MessageTimeout=30
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    cat > "$dir/gres.conf" << EOF
AutoDetect=off
NodeName=$host Name=gpu File=/dev/null
EOF
    mkdir -p /run/slurm
    ln -s "$dir" /run/slurm/conf
    export SLURM_CONF=$dir/slurm.conf
    slurmctld -i
    slurmd -b
    state=
    for _ in $(seq 60); do  # up to ~30 s
        kill -0 "$(cat "$dir/slurmctld.pid" 2> /dev/null)" 2> /dev/null || { sleep 0.5; continue; }
        state=$(timeout 5 sinfo -h -N -p cpu -o %T 2> /dev/null | head -1 || true)
        [[ $state == idle* ]] && break
        sleep 0.5
    done
    [[ $state == idle* ]] || { echo "cluster.sh: the node did not become idle (state '${state:-none}')" >&2; false; }
    trap - ERR
    echo "export SLURM_CONF=$dir/slurm.conf"
    ;;
stop)
    dir=$(cd "$dir" 2> /dev/null && pwd) || { echo "cluster.sh: no directory $2" >&2; exit 1; }
    if [[ -f $dir/slurm.conf ]] && command -v scancel > /dev/null; then
        SLURM_CONF=$dir/slurm.conf scancel --full --quiet --user "$(id -un)" 2> /dev/null || true
    fi
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munge/munged.pid"
    [[ -L /run/slurm/conf && $(readlink /run/slurm/conf) == "$dir" ]] && rm -f /run/slurm/conf
    true
    ;;
status)
    SLURM_CONF=$(cd "$dir" && pwd)/slurm.conf sinfo -N -o "%N %P %T %c %m %G"
    ;;
*)
    usage
    ;;
esac
