#!/usr/bin/env bash
# Memory before login (issue 10): 1,500 connections to the msg port each send a header claiming
# a 1 MiB PDU and then the bytes, and never a 1/3. Prints the server's VmRSS before, at the
# peak (while the connections are open) and after they are closed. With MaxPduSizeBeforeLogin
# the server closes each connection at its header. Loopback only, bounded. Needs python3.
#   scripts/prelogin.sh            (TTSERVER_BIN=path measures another build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
tt_build
tt_workdir prelogin
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cat > "$work/prelogin.py" <<'PY'
import socket, struct, sys, time
msg_addr, pid = sys.argv[1], int(sys.argv[2])
N, CLAIM = 1500, 1 << 20
def rss_mib(field='VmRSS:'):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
h, p = msg_addr.rsplit(':', 1)
before = rss_mib()
conns, refused = [], 0
body = b'\0' * (CLAIM - 12)
start = time.monotonic()
for i in range(N):
    s = socket.create_connection((h, int(p)))
    try:
        s.sendall(struct.pack('>IHHHH', CLAIM, 3, 1, 1, 0) + body)
    except OSError:
        refused += 1
    conns.append(s)
t0 = time.monotonic()
time.sleep(8.0)  # the server reads what was sent (all within LoginTimeout, 15 s)
peak = rss_mib('VmHWM:')  # the highest RSS so far (LoginTimeout closes the oldest meanwhile)
for s in conns:
    s.close()
time.sleep(2.0)
after = rss_mib()
print(f"result scenario=prelogin conns={N} claim_bytes={CLAIM} send_refused={refused} "
      f"send_secs={t0 - start:.1f} "
      f"rss_before_mib={before:.1f} rss_peak_mib={peak:.1f} rss_after_mib={after:.1f}")
PY

tt_conf "$work/t.conf"
tt_start server "$bin" run -c "$work/t.conf"
python3 "$work/prelogin.py" "${listen[msg]}" "$last_pid"
