#!/usr/bin/env bash
# CPU per input byte (issue 10): 8 logged-in connections each hold a partial 3/1 (header claims
# 1,000,000 bytes, 850,000 sent), then send one byte each every 100 us for 8 s; the same again
# with empty buffers (only the 12-byte header held). Prints the server's CPU use (utime + stime
# from /proc) during the trickle for both: a read should cost its new bytes only, so the two
# should be close. Loopback only, bounded in time. Needs python3.
#   scripts/trickle.sh            (TTSERVER_BIN=path measures another build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
tt_build
tt_workdir trickle

cat > "$work/trickle.py" <<'PY'
import hashlib, os, socket, struct, sys, time
msg_addr, pid, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
N, CLAIM, GAP, SECS = 8, 1_000_000, 0.0001, 8.0
def s_(b): return struct.pack('>I', len(b)) + b
def pdu(m, c, body): return struct.pack('>IHHHH', 12 + len(body), m, c, 1, 1) + body
def login(name):
    h, p = msg_addr.rsplit(':', 1)
    s = socket.create_connection((h, int(p))); s.settimeout(10)
    body = (s_(name.encode()) + s_(hashlib.md5(b'pw').hexdigest().encode())
            + struct.pack('>II', 1, 1) + s_(b'trickle'))
    s.sendall(pdu(1, 3, body))
    n = struct.unpack('>I', s.recv(12, socket.MSG_WAITALL)[:4])[0]
    rest = s.recv(n - 12, socket.MSG_WAITALL)
    assert struct.unpack('>I', rest[4:8])[0] == 0, 'login failed'
    return s
def cpu():
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
conns = [login(f'u{i + 1}') for i in range(N)]
for s in conns:
    s.sendall(struct.pack('>IHHHH', CLAIM, 3, 1, 1, 0) + b'\0' * (hold - 12))
time.sleep(1.0)  # the held bytes reach the server before the measured phase
c0 = cpu(); t0 = nxt = time.monotonic(); sent = 0
while time.monotonic() - t0 < SECS:
    for s in conns:
        s.send(b'\0'); sent += 1
    nxt += GAP
    while time.monotonic() < nxt:
        pass
c1 = cpu(); t1 = time.monotonic()
print(f"result scenario=trickle conns={N} held_bytes={hold} bytes_per_s={sent / (t1 - t0):.0f} "
      f"server_cpu_pct={100 * (c1 - c0) / (t1 - t0):.1f}")
PY

seq 1 16 | sed 's/.*/u&,pw/' > "$work/users.csv"
for hold in 850000 12; do
    rm -rf "$work/data"
    tt_conf "$work/t$hold.conf"
    "$bin" admin -c "$work/t$hold.conf" user import "$work/users.csv" >/dev/null
    tt_start "server$hold" "$bin" run -c "$work/t$hold.conf"
    python3 "$work/trickle.py" "${listen[msg]}" "$last_pid" "$hold"
    kill "$last_pid"; wait "$last_pid" 2>/dev/null || true
done
