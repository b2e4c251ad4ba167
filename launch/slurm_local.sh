#!/usr/bin/env bash
# Starts (and stops) a real single-node Slurm cluster on this machine, for trying
# launch/gridlm.sbatch and for tests/e2e/test_slurm.sh. Everything it writes stays in DIR: a
# private munged (own key and socket), slurm.conf, state, spool, logs and pid files; it does not
# touch /etc/slurm or a munged/slurmd the machine already runs. DIR is made mode 0755 and its
# parents must be searchable by the munge user (anything under /tmp is).
#   bash launch/slurm_local.sh start DIR   # installs slurm-wlm + munge when missing, starts
#                                          # munged, slurmctld and slurmd, waits for an idle node
#   . DIR/env                              # or: eval "$(bash launch/slurm_local.sh start DIR)"
#   sbatch -O -n 4 launch/gridlm.sbatch ...; squeue; sinfo
#   bash launch/slurm_local.sh stop DIR    # cancels its jobs, stops exactly the daemons it started
# start prints `export SLURM_CONF=DIR/slurm.conf` on stdout (and writes it to DIR/env); progress
# goes to stderr. Needs root or passwordless sudo (slurmd runs jobs as the submitting user).
# Environment: SLURM_LOCAL_CPUS (CPUs the node offers, default nproc),
#   SLURM_LOCAL_PORT (first port to try for slurmctld; slurmd takes the next free one, default 6817).
set -euo pipefail
script=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
say() { printf '[slurm_local] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$script" >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
case $cmd in start|stop) ;; *) usage ;; esac
if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || die "needs root or passwordless sudo"
    exec sudo -n --preserve-env=SLURM_LOCAL_CPUS,SLURM_LOCAL_PORT bash "$script" "$@"
fi
if [ "$cmd" = stop ] && [ ! -d "$2" ]; then exit 0; fi
mkdir -p "$2"
dir=$(cd "$2" && pwd)
partition=local

# pid_alive PID NAME: PID runs the program NAME (guards against a recycled pid).
pid_alive() { [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# stop_daemon PIDFILE NAME: TERM the daemon recorded in PIDFILE, KILL it after 10 s.
stop_daemon() {
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if pid_alive "$pid" "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do pid_alive "$pid" "$name" || break; sleep 0.1; done
        if pid_alive "$pid" "$name"; then
            say "$name ($pid) ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
}

stop_all() {
    if [ -f "$dir/slurm.conf" ] && pid_alive "$(cat "$dir/pids/slurmctld.pid" 2>/dev/null)" slurmctld; then
        export SLURM_CONF=$dir/slurm.conf
        # Jobs first: their slurmstepd processes would outlive slurmd.
        scancel --partition="$partition" 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(squeue -h -p "$partition" -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    stop_daemon "$dir/pids/slurmd.pid" slurmd
    stop_daemon "$dir/pids/slurmctld.pid" slurmctld
    stop_daemon "$dir/munge/munged.pid" munged
}

if [ "$cmd" = stop ]; then
    stop_all
    exit 0
fi

# ---- start ----------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null ||
    ! command -v sbatch >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    apt-get update -qq >&2
    # In a container policy-rc.d stops the packages' services from starting; under systemd the
    # munge service starts with its own key and slurmd/slurmctld wait for /etc/slurm/slurm.conf.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
id munge >/dev/null 2>&1 || die "the munge user does not exist (is the munge package installed?)"
pid_alive "$(cat "$dir/pids/slurmctld.pid" 2>/dev/null)" slurmctld && die "a cluster already runs in $dir; stop it first"

node=$(hostname -s)
cpus=${SLURM_LOCAL_CPUS:-$(nproc)}
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/pids"
# munged runs as the munge user: it must be able to reach DIR; clients must reach its socket.
chmod 0755 "$dir"
runuser -u munge -- test -x "$dir" ||
    die "the munge user cannot enter $dir; choose a directory whose parents are world-searchable (e.g. under /tmp)"
chown munge:munge "$dir/munge"
chmod 0755 "$dir/munge"

# failed MESSAGE: show the logs, stop whatever this start began, exit 1.
failed() {
    say "error: $*"
    tail -n 15 "$dir/munge/munged.log" "$dir/log/slurmctld.log" "$dir/log/slurmd.log" 2>/dev/null |
        sed 's/^/    /' >&2 || true
    stop_all
    exit 1
}

# ---- munged: a private instance with its own key and socket ----------------------------------------
m=$dir/munge
if [ ! -f "$m/munge.key" ]; then
    dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$m/munge.key"
    chmod 0400 "$m/munge.key"
fi
rm -f "$m/munge.socket" "$m/munge.socket.lock"
runuser -u munge -- munged --socket="$m/munge.socket" --key-file="$m/munge.key" \
    --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed" ||
    failed "munged did not start"
for _ in $(seq 50); do [ -S "$m/munge.socket" ] && break; sleep 0.1; done
munge -n -S "$m/munge.socket" | unmunge -S "$m/munge.socket" >/dev/null ||
    failed "munged does not answer on $m/munge.socket"
say "munged running (pid $(cat "$m/munged.pid"))"

# ---- slurm.conf --------------------------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${SLURM_LOCAL_PORT:-6817}
while ! port_free "$port"; do port=$((port + 1)); done
ctld_port=$port
port=$((port + 1))
while ! port_free "$port"; do port=$((port + 1)); done
slurmd_port=$port

: >"$dir/plugstack.conf"
cat >"$dir/slurm.conf" <<EOF
# Single-node cluster made by launch/slurm_local.sh; everything lives in $dir.
ClusterName=gridlm-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$m/munge.socket
# No cgroups in a container: track processes by parent pid, leave binding to the job.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
PlugStackConfig=$dir/plugstack.conf
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/pids/slurmctld.pid
SlurmdPidFile=$dir/pids/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
export SLURM_CONF=$dir/slurm.conf
printf 'export SLURM_CONF=%s\n' "$SLURM_CONF" >"$dir/env"
chmod 0644 "$dir/env" "$dir/slurm.conf" "$dir/plugstack.conf"

# ---- slurmctld and slurmd (they daemonize and write their pid files) -------------------------------
slurmctld -i -f "$SLURM_CONF" || failed "slurmctld did not start"
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.1; done
scontrol ping >/dev/null 2>&1 || failed "slurmctld does not answer"
slurmd -f "$SLURM_CONF" || failed "slurmd did not start"
state=""
for _ in $(seq 300); do
    state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || failed "node $node is '$state', not idle, after 60 s"
say "slurmctld (pid $(cat "$dir/pids/slurmctld.pid"), port $ctld_port) and slurmd" \
    "(pid $(cat "$dir/pids/slurmd.pid"), port $slurmd_port): node $node idle with $cpus CPUs"
cat "$dir/env"
