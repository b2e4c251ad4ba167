# Two hosts on one machine: two network namespaces joined by a veth pair, each with its own UTS
# host name, act as two nodes. mpirun runs in the first with a hostfile naming both; its rsh
# launcher starts the second node's orted through a small agent script (`ip netns exec` +
# `unshare --uts`) instead of ssh, and Open MPI talks TCP over the veth between them (shared
# memory only inside a node). Checks:
#   - on the tiny random-weight Qwen2, dp=1 pp=2 tp=2 (one pipeline stage per host, TP inside a
#     host) and dp=2 tp=2 (one replica per host), and on SmolLM2-135M Q4_1 pp=2 (one rank per
#     host), write the same bytes as the single-rank run; the first half of the ranks run on the
#     first host, the rest on the second, and the veth carried at least the pipeline's activations;
#   - without the TCP transport the job cannot run (so TCP is what carries the traffic);
#   - SIGKILL of every rank on the second host mid-job: mpirun exits non-zero within 30 s, no
#     process is left in either namespace, the lines written are whole JSON, and a single-host
#     --resume completes the output to exactly the single-rank result.
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), `ip` (iproute2) and `unshare` (util-linux); where
# namespaces cannot be made it says why and exits 77, which ctest reports as skipped.
# Usage: test_two_host.sh GRIDLM MODELS_DIR
set -u
gridlm=$(realpath "$1")
models=$2
. "$(dirname "$0")/lib.sh"

skip() {
    echo "SKIP: test_two_host: $*"
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (uid $(id -u))"
for tool in ip unshare hostname timeout mpirun jq; do
    command -v "$tool" >/dev/null || skip "'$tool' is not installed (launch/setup.sh installs it)"
done

# --- two hosts -------------------------------------------------------------------------------------
id=$$
nsA=gridlm-a-$id nsB=gridlm-b-$id   # network namespaces
hostA=twohost-a-$id hostB=twohost-b-$id
vethA=glva$id vethB=glvb$id         # at most 15 characters
addrA=10.77.0.1 addrB=10.77.0.2 net=10.77.0.0/24
made=()
comm=$(basename "$gridlm" | cut -c1-15)  # the kernel keeps 15 characters of the name

# ns_pids NS: the processes in network namespace NS (only this test's processes live there).
ns_pids() { ip netns pids "$1" 2>/dev/null; }
cleanup() {
    local ns p
    for ns in "${made[@]}"; do
        for p in $(ns_pids "$ns"); do kill -KILL "$p" 2>/dev/null; done
    done
    for ns in "${made[@]}"; do
        for _ in $(seq 50); do [ -z "$(ns_pids "$ns")" ] && break; sleep 0.1; done
        ip netns del "$ns" 2>/dev/null
    done
    ip link del "$vethA" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# Namespaces an earlier run left when it was killed outright (its pid is gone) go first.
for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E '^gridlm-[ab]-[0-9]+$'); do
    kill -0 "${ns##*-}" 2>/dev/null && continue
    for p in $(ns_pids "$ns"); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
done
ip netns add "$nsA" 2>"$tmp/ip.err" || skip "cannot create a network namespace: $(cat "$tmp/ip.err")"
made+=("$nsA")
ip netns add "$nsB" 2>"$tmp/ip.err" || skip "cannot create a network namespace: $(cat "$tmp/ip.err")"
made+=("$nsB")
ip netns exec "$nsA" unshare --uts true 2>"$tmp/ip.err" ||
    skip "cannot create a UTS namespace (unshare --uts): $(cat "$tmp/ip.err")"
{
    ip link add "$vethA" type veth peer name "$vethB" &&
        ip link set "$vethA" netns "$nsA" && ip link set "$vethB" netns "$nsB" &&
        ip -n "$nsA" addr add "$addrA/24" dev "$vethA" && ip -n "$nsB" addr add "$addrB/24" dev "$vethB" &&
        ip -n "$nsA" link set lo up && ip -n "$nsB" link set lo up &&
        ip -n "$nsA" link set "$vethA" up && ip -n "$nsB" link set "$vethB" up
} 2>"$tmp/ip.err" || skip "cannot set up the veth pair: $(cat "$tmp/ip.err")"

# The rsh agent: Open MPI runs `AGENT HOST COMMAND...` where ssh would run; COMMAND is a shell
# command line (environment settings, then orted).
cat >"$tmp/agent.sh" <<EOF
#!/bin/sh
case "\$1" in
    $hostB) ns=$nsB ;;
    *) echo "agent: unknown host \$1" >&2; exit 1 ;;
esac
shift
exec ip netns exec "\$ns" unshare --uts sh -c 'hostname "\$0"; eval "\$*"' "$hostB" "\$@"
EOF
# Each rank says where it runs, then becomes gridlm (same pid, same name).
cat >"$tmp/rank.sh" <<EOF
#!/bin/sh
echo "rank \$OMPI_COMM_WORLD_RANK on host \$(hostname)" >&2
exec "$gridlm" "\$@"
EOF
chmod +x "$tmp/agent.sh" "$tmp/rank.sh"
printf '%s slots=2\n%s slots=2\n' "$hostA" "$hostB" >"$tmp/hosts"
mkdir -p "$tmp/mpi"

# two_host_mpirun ARGS...: mpirun on host A with PER_HOST (default 2) ranks per host, the
# out-of-band and MPI traffic between hosts on the veth subnet. Four busy-polling ranks on a 2-core
# machine would starve each other: idle ranks yield (mpirun turns this on by itself only when it
# sees the oversubscription, and here it counts 2 slots per host).
two_host_mpirun() {
    local per=${PER_HOST:-2}
    TMPDIR=$tmp/mpi timeout "${LIMIT:-120}" ip netns exec "$nsA" unshare --uts sh -c 'hostname "$0"; exec "$@"' "$hostA" \
        mpirun -n $((2 * per)) --hostfile "$tmp/hosts" --map-by "ppr:$per:node" --bind-to none \
        --mca plm_rsh_agent "$tmp/agent.sh" --mca oob_tcp_if_include "$net" \
        --mca btl_tcp_if_include "$net" --mca btl "${BTL:-tcp,self,vader}" --mca mpi_yield_when_idle 1 \
        "$tmp/rank.sh" generate --threads 1 "$@"
}
# veth_bytes: bytes host A has sent to host B so far.
veth_bytes() { ip netns exec "$nsA" cat "/sys/class/net/$vethA/statistics/tx_bytes"; }
# expect_hosts WHAT: the first PER_HOST ranks said host A, the others host B.
expect_hosts() {
    local r want per=${PER_HOST:-2}
    for r in $(seq 0 $((2 * per - 1))); do
        want=$hostA
        [ "$r" -ge "$per" ] && want=$hostB
        grep -qx "rank $r on host $want" "$tmp/stderr" || fail "$1: rank $r did not run on $want: $(grep '^rank ' "$tmp/stderr" | tr '\n' ';')"
    done
}
# no_leftovers WHAT: no process is left in either namespace (5 s grace).
no_leftovers() {
    local ns
    for ns in "$nsA" "$nsB"; do
        for _ in $(seq 50); do [ -z "$(ns_pids "$ns")" ] && break; sleep 0.1; done
        [ -z "$(ns_pids "$ns")" ] || fail "$1: processes left in $ns: $(ps -o pid=,comm= -p "$(ns_pids "$ns" | paste -sd,)" | tr '\n' ';')"
    done
}

# --- the model and the reference --------------------------------------------------------------------
src=$(cd "$(dirname "$0")/../reference/golden" && pwd)/tiny-qwen2-hf
model=$tmp/tiny.h5
expect_rc 0 "convert" "$gridlm" convert --from "$src" --to "$model"
cat >"$tmp/p.jsonl" <<'JSONL'
{"id": "a", "prompt": "Hello world", "max_tokens": 48, "ignore_eos": true}
{"id": "b", "prompt": "The tiny model", "max_tokens": 40, "ignore_eos": true}
{"id": "c", "prompt": [5, 17, 300, 44, 12], "max_tokens": 48, "ignore_eos": true}
{"id": "d", "prompt": "sampled", "max_tokens": 32, "ignore_eos": true, "temperature": 1.0, "seed": 4}
{"id": "e", "prompt": "abc", "max_tokens": 32, "ignore_eos": true, "temperature": 0.7, "top_k": 20, "n": 2}
JSONL
args=(--model "$model" --temperature 0 --order input --max-model-len 256)
expect_rc 0 "single rank" "$gridlm" generate "${args[@]}" --prompts "$tmp/p.jsonl" --output "$tmp/ref.jsonl" --threads 1 -q
[ "$(jq -s 'length' "$tmp/ref.jsonl")" = 5 ] || fail "single rank: expected 5 results"

# --- grids across the two hosts ---------------------------------------------------------------------
# two_host_grid WHAT REF DP PP TP ARGS...: the grid on both hosts writes exactly REF.
two_host_grid() {
    local what=$1 ref=$2 out=$tmp/grid_$3_$4_$5_$RANDOM.jsonl before
    before=$(veth_bytes)
    expect_rc 0 "$what" two_host_mpirun "${@:6}" --output "$out" --dp "$3" --pp "$4" --tp "$5" --log-format json
    same_output "$what" "$ref" "$out"
    expect_hosts "$what"
    no_leftovers "$what"
    sent=$(($(veth_bytes) - before))
    # What the first pipeline stage sent to the second (gridlm's own count) crossed the veth.
    stage_bytes=$(grep -h '"event":"stage_time"' "$tmp/stderr" | jq -s 'map(.sent_bytes // 0) | add // 0')
    echo "$what: host A sent $sent bytes over the veth; pipeline sends $stage_bytes bytes"
    [ "$sent" -ge "$stage_bytes" ] || fail "$what: the veth carried $sent bytes, less than the $stage_bytes the pipeline sent"
}
two_host_grid "two hosts, dp=1 pp=2 tp=2" "$tmp/ref.jsonl" 1 2 2 "${args[@]}" --prompts "$tmp/p.jsonl"
[ "${stage_bytes:-0}" -gt 0 ] || fail "dp=1 pp=2 tp=2: gridlm reported no pipeline sends"
two_host_grid "two hosts, dp=2 pp=1 tp=2" "$tmp/ref.jsonl" 2 1 2 "${args[@]}" --prompts "$tmp/p.jsonl"

# A real model: SmolLM2-135M Q4_1, one pipeline stage per host (its 9 heads allow no tp=2).
smollm2=$models/SmolLM2-135M-Instruct.Q4_1.gguf
require_files "$smollm2"
printf '%s\n' "The capital of France is" "Write a haiku about rain." "1, 2, 3, 4," >"$tmp/s.txt"
sargs=(--model "$smollm2" --prompts "$tmp/s.txt" --temperature 0 --order input --max-tokens 16)
expect_rc 0 "SmolLM2 single rank" "$gridlm" generate "${sargs[@]}" --output "$tmp/sref.jsonl" --threads 1 -q
PER_HOST=1 two_host_grid "two hosts, SmolLM2 dp=1 pp=2 tp=1" "$tmp/sref.jsonl" 1 2 1 "${sargs[@]}"
[ "${stage_bytes:-0}" -gt 0 ] || fail "SmolLM2 pp=2: gridlm reported no pipeline sends"

# Shared memory and self alone cannot join the hosts: the grid then fails to start, so in the
# runs above TCP over the veth carried the traffic between hosts.
BTL=self,vader LIMIT=60 expect_rc 1 "two hosts without TCP" two_host_mpirun "${args[@]}" \
    --prompts "$tmp/p.jsonl" --output "$tmp/notcp.jsonl" --dp 1 --pp 2 --tp 2 -q
expect_stderr "two hosts without TCP" "unable to reach each other"
no_leftovers "two hosts without TCP"

# --- kill every rank on host B mid-job --------------------------------------------------------------
for i in $(seq 160); do
    echo "{\"id\": \"k$i\", \"prompt\": \"Record $i of the kill test\", \"max_tokens\": 64, \"ignore_eos\": true}"
done >"$tmp/k.jsonl"
kargs=("${args[@]}" --prompts "$tmp/k.jsonl" -q)
expect_rc 0 "kill reference" "$gridlm" generate "${kargs[@]}" --output "$tmp/kref.jsonl" --threads 1
out=$tmp/killed.jsonl
two_host_mpirun "${kargs[@]}" --output "$out" --dp 1 --pp 2 --tp 2 \
    >"$tmp/kill.out" 2>"$tmp/kill.err" &
job=$!
for _ in $(seq 600); do
    [ -s "$out" ] && break
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
done
victims=()
for p in $(ns_pids "$nsB"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ] && victims+=("$p")
done
if ! kill -0 "$job" 2>/dev/null || [ ! -s "$out" ] || [ "${#victims[@]}" != 2 ]; then
    fail "kill: the job ended or wrote nothing before the kill, or host B runs ${#victims[@]} ranks, not 2"
    tail -12 "$tmp/kill.err" | sed 's/^/    /'
    finish test_two_host
fi
lines_before=$(wc -l <"$out")
kill -KILL "${victims[@]}"
t0=$(date +%s.%N)
wait "$job"
rc=$?
took=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
echo "kill: SIGKILL to host B's ranks (pids ${victims[*]}) with $lines_before line(s) written; mpirun exited $rc after $took s"
[ "$rc" != 0 ] || fail "kill: mpirun exited 0 although host B's ranks were killed"
[ "$rc" != 124 ] || fail "kill: the job hung until its time limit (${LIMIT:-120} s)"
awk "BEGIN { exit !($took < 30) }" || fail "kill: the job took $took s to end"
grep -q "exited on signal 9" "$tmp/kill.err" || fail "kill: mpirun does not report the killed ranks: $(tail -c 400 "$tmp/kill.err")"
no_leftovers "kill"
lines=$(wc -l <"$out")
[ "$lines" -lt 160 ] || fail "kill: all 160 records finished: the kill came too late to test anything"
jq -e -s 'all(.[]; type == "object" and (.id | type == "string") and (.text | type == "string"))' "$out" >/dev/null 2>&1 ||
    fail "kill: the output has a line that is not a whole record"
[ -z "$(tail -c 1 "$out")" ] || fail "kill: the output ends in the middle of a line"
expect_rc 0 "kill: --resume on one host" "$gridlm" generate "${kargs[@]}" --output "$out" --threads 1 --resume
same_output "kill: resumed" "$tmp/kref.jsonl" "$out"
echo "kill: $lines whole line(s) on disk after the kill; the resumed job completed the other $((160 - lines))"

finish test_two_host
