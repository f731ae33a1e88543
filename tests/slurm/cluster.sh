#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for tests/test_slurm.py.
#   tests/slurm/cluster.sh start DIR   write DIR/slurm.conf, start munged, slurmctld and
#                                      slurmd, wait (bounded) until the node is idle
#   tests/slurm/cluster.sh stop DIR    kill the daemons started from DIR
# Needs root and Debian's `slurm-wlm munge`. Clients find the cluster with
# SLURM_CONF=DIR/slurm.conf; all state and logs stay in DIR, the only thing outside it is
# the link /run/slurm/conf -> DIR (see start), removed by stop. Exit status 0 only when
# the node is idle and accepts jobs; every wait is bounded.
set -euo pipefail

action=${1:?usage: cluster.sh start|stop DIR}
dir=${2:?usage: cluster.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export SLURM_CONF=$dir/slurm.conf

alive() {  # a zombie (exited, not yet reaped) counts as gone
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

stop() {
    # Only the daemons whose pid files are in DIR, each by its pid.
    local name pid
    for name in slurmd slurmctld munged; do
        [[ -s $dir/$name.pid ]] || continue
        pid=$(cat "$dir/$name.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do alive "$pid" || break; sleep 0.5; done  # up to 10 s each
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/$name.pid"
    done
    # The link made by start, if it is ours.
    [[ $(readlink /run/slurm/conf) == "$dir" ]] && rm -f /run/slurm/conf
    return 0
}

fail() {
    echo "cluster.sh: $*" >&2
    for log in munged slurmctld slurmd; do
        [[ -f $dir/$log.log ]] && { echo "--- $log.log" >&2; tail -n 15 "$dir/$log.log" >&2; }
    done
    stop
    exit 1
}

start() {
    [[ $(id -u) == 0 ]] || fail "needs root (slurmd runs jobs as their user)"
    for bin in munged slurmctld slurmd sinfo sbatch; do
        command -v "$bin" >/dev/null || fail "$bin not found: apt-get install slurm-wlm munge"
    done
    # The `srun` that snakemake's slurm-jobstep runs inside each job gets no SLURM_CONF:
    # it reads /etc/slurm/slurm.conf, else /run/slurm/conf/slurm.conf (where a
    # configless slurmd keeps the node's copy). DIR is linked at the latter below; a
    # machine that has either already belongs to another cluster.
    [[ ! -e /etc/slurm/slurm.conf ]] || fail "/etc/slurm/slurm.conf exists (a real cluster?)"
    [[ ! -e /run/slurm/conf ]] || fail "/run/slurm/conf exists (a real cluster?)"
    local host
    host=$(hostname -s)
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
    chmod 755 "$dir/munge"  # munged wants its socket's directory searchable

    # A private munge key and socket, so that a system munged (if any) is left alone.
    head -c 1024 /dev/urandom > "$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    # --force: run as root and accept the temp dir's permissions.
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" \
        --seed-file="$dir/munge/seed" || fail "munged did not start"

    # Ports off the defaults (6817/6818) so as not to meet a real cluster's daemons.
    # config_overrides: trust CPUs/RealMemory below instead of the hardware, so the node
    # is never drained for "low memory/cores" on a smaller machine.
    cat > "$SLURM_CONF" <<CONF
ClusterName=deqbench-test
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

    # -i: ignore state from an earlier run in the same DIR.
    slurmctld -i -f "$SLURM_CONF" || fail "slurmctld did not start"
    slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
    mkdir -p /run/slurm
    ln -sfn "$dir" /run/slurm/conf

    local state=""
    for _ in $(seq 60); do  # up to 30 s
        state=$(timeout 5 sinfo -h -n "$host" -o %t 2>/dev/null || true)
        [[ $state == idle ]] && { echo "SLURM_CONF=$SLURM_CONF"; return 0; }
        sleep 0.5
    done
    fail "node $host not idle after 30 s (sinfo state: '${state:-none}')"
}

case $action in
    start) start ;;
    stop) stop ;;
    *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
