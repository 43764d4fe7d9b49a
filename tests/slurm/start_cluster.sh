#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for tests/test_slurm.py.
#
#   sudo tests/slurm/start_cluster.sh    # as root; apt-get when SLURM is not installed yet
#
# What it does (each step only when needed, so a second call with the cluster up does nothing):
#   1. installs slurmctld, slurmd, slurm-client and munge with apt-get;
#   2. creates the munge key and starts munged (no systemd needed: containers and CI runners);
#   3. writes slurm.conf and gres.conf for one node named `hostname -s` with its real CPUs and
#      memory (`slurmd -C`), one schedulable fake GPU (gres gpu:1 backed by /dev/null), the
#      partitions `cpu` (default) and `gpu`, and no accounting database;
#   4. starts slurmctld and slurmd as daemons and waits until the node is idle.
#
# Exit status: 0 the cluster is up; 2 it cannot be started here (not root, no apt-get, or a
# slurm.conf this script did not write: a real SLURM setup is never touched) — the tests skip on
# 2 outside CI; 1 anything else (the message says what). Logs: /var/log/slurm/.
#
# Environment: SLURM_TEST_WAIT (seconds to wait for the node, default 90).
# Meant for throwaway machines (CI runners, containers, VMs): the daemons run as root.
set -euo pipefail

CLUSTER_NAME=adapterflow-test
WAIT_S=${SLURM_TEST_WAIT:-90}
NODE=$(hostname -s)
LOG_DIR=/var/log/slurm
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
MUNGE_KEY=/etc/munge/munge.key
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "start_cluster: $*"; }
die() { # message [exit status]
    echo "start_cluster: ERROR: $1" >&2
    exit "${2:-1}"
}

# Debian/Ubuntu keep the config in /etc/slurm since SLURM 20.11 (older releases: /etc/slurm-llnl).
conf_dir() {
    if [[ -d /etc/slurm-llnl && ! -d /etc/slurm ]]; then echo /etc/slurm-llnl; else echo /etc/slurm; fi
}

# The test cluster is up: slurmctld answers, it is ours, and the node takes jobs.
# (Outputs are captured before matching: `cmd | grep -q` fails under pipefail when grep exits
# early and cmd gets SIGPIPE.)
cluster_up() {
    local ping config
    command -v scontrol >/dev/null 2>&1 || return 1
    ping=$(timeout 10 scontrol ping 2>/dev/null) || return 1
    [[ $ping == *"is UP"* ]] || return 1
    config=$(timeout 10 scontrol show config 2>/dev/null) || return 1
    grep -Eq "^ClusterName +=[[:space:]]*${CLUSTER_NAME}$" <<<"$config" || return 1
    [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}

controller_up() {
    local ping
    ping=$(timeout 5 scontrol ping 2>/dev/null) && [[ $ping == *"is UP"* ]]
}

# The node's state without flag suffixes (idle, mixed, drained, down, ...).
node_state() {
    local state
    state=$(timeout 10 sinfo -h -N -n "$NODE" -o "%T" 2>/dev/null) || true
    state=${state%%$'\n'*}
    echo "${state//[*~#!%\$@^-]/}"
}

if cluster_up; then
    say "cluster '$CLUSTER_NAME' is already up (node $NODE: $(node_state))"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root to install and start SLURM (it is not up yet)" 2

CONF_DIR=$(conf_dir)
MARKER="# Written by tests/slurm/start_cluster.sh"
if [[ -s $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and was not written by this script: a real SLURM setup; leaving it alone" 2
fi

# --- 1. packages ---------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${missing[*]} by hand" 2
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # No daemon autostart from the package scripts: this script starts them.
    policy_rc=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy_rc ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod +x "$policy_rc" && created_policy=1
    fi
    apt_log=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
        ((created_policy)) && rm -f "$policy_rc"
        tail -n 20 "$apt_log" >&2
        die "apt-get install ${missing[*]} failed (log above)"
    fi
    ((created_policy)) && rm -f "$policy_rc"
    rm -f "$apt_log"
fi
for bin in munged slurmctld slurmd sbatch srun sinfo scontrol; do
    command -v "$bin" >/dev/null 2>&1 || die "$bin not found after installing ${PACKAGES[*]}"
done
say "$(slurmd -V)"

# --- 2. munge --------------------------------------------------------------------------------
munge_user=root
id munge >/dev/null 2>&1 && munge_user=munge
install -d -m 0700 -o "$munge_user" /etc/munge /var/lib/munge /var/log/munge
install -d -m 0755 -o "$munge_user" /run/munge
if [[ ! -s $MUNGE_KEY ]]; then
    say "creating $MUNGE_KEY"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile "$MUNGE_KEY" --force
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown "$munge_user:" "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged (as $munge_user)"
    if [[ $munge_user == root ]]; then
        munged --force
    else
        runuser -u munge -- munged
    fi
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
    munge -n | unmunge >/dev/null || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- 3. configuration ------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$CTLD_STATE" "$SLURMD_SPOOL"
# The controller and node address: the host name where it resolves, else loopback.
if getent hosts "$NODE" >/dev/null 2>&1; then
    CTLD_HOST=$NODE
    NODE_ADDR=""
else
    CTLD_HOST="$NODE(127.0.0.1)"
    NODE_ADDR="NodeAddr=127.0.0.1 "
fi
# The node as slurmd sees it: CPUs, Boards, SocketsPerBoard, CoresPerSocket, ThreadsPerCore,
# RealMemory — the line `slurmd -C` prints, minus its NodeName.
hardware=$(slurmd -C)
hardware=${hardware%%$'\n'*}
hardware=${hardware#NodeName=* }
[[ $hardware == *CPUs=* && $hardware == *RealMemory=* ]] || die "cannot read the hardware from 'slurmd -C': $hardware"

cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER: a one-node test cluster, no accounting database.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$CTLD_HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs without --mem get 1 GiB per CPU instead of the whole node (which would serialise them).
DefMemPerCPU=1024
# No slurmdbd: sacct cannot answer, so Snakemake must poll with squeue
# (--slurm-status-command squeue), which sees finished jobs for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# One line per finished job (name, partition, TRES, work dir): a durable record of what ran.
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
MinJobAge=3600
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MailProg=/bin/true
GresTypes=gpu
NodeName=$NODE $NODE_ADDR$hardware Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF

# A schedulable GPU without hardware: SLURM counts it and sets CUDA_VISIBLE_DEVICES, and the
# "device file" is /dev/null. Real GPU nodes list /dev/nvidia* (or AutoDetect=nvml) instead.
cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
NodeName=$NODE Name=gpu File=/dev/null
EOF
say "wrote $CONF_DIR/slurm.conf and gres.conf (node $NODE: $hardware, gres gpu:1)"

# --- 4. daemons ------------------------------------------------------------------------------
running() { # pidfile
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# The pidfile names a process that is gone: the daemon exited (e.g. on a config error).
exited() { # pidfile
    [[ -s $1 ]] && ! kill -0 "$(cat "$1")" 2>/dev/null
}

if running /run/slurmctld.pid; then
    say "slurmctld is running; reloading the configuration"
    scontrol reconfigure || true
else
    say "starting slurmctld"
    rm -f /run/slurmctld.pid
    slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
fi
for _ in $(seq 30); do
    controller_up && break
    exited /run/slurmctld.pid && break # it exited: the log says why
    sleep 1
done
controller_up ||
    die "slurmctld does not answer: $(tail -n 5 $LOG_DIR/slurmctld.log 2>/dev/null)"

if ! running /run/slurmd.pid; then
    say "starting slurmd"
    rm -f /run/slurmd.pid
    slurmd || die "slurmd did not start (see $LOG_DIR/slurmd.log)"
fi

say "waiting up to ${WAIT_S}s for node $NODE to be idle"
resumed=0
for ((i = 0; i < WAIT_S; i++)); do
    state=$(node_state)
    case $state in
    idle | mixed | allocated | completing)
        say "cluster '$CLUSTER_NAME' is up: $(sinfo -h -o '%P %a %D %t' | tr '\n' ';')"
        exit 0
        ;;
    drained | draining | down)
        if ((!resumed)); then
            say "node is $state ($(sinfo -h -R -n "$NODE" -o '%E')); resuming it"
            scontrol update NodeName="$NODE" State=RESUME || true
            resumed=1
        fi
        ;;
    esac
    sleep 1
done
die "node $NODE is not idle after ${WAIT_S}s (state: '$(node_state)', reason: '$(sinfo -h -R -n "$NODE" -o '%E')'); see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log:
$(tail -n 10 $LOG_DIR/slurmd.log 2>/dev/null)"
