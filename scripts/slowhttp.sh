#!/usr/bin/env bash
# Slow HTTP against msfs (issue 10): 300 connections from 127.0.0.1-127.0.0.5 each send a request
# head one byte every 2 s (every byte resets the idle time); after 15 s and after 30 s a normal
# client tries an upload. Prints whether it was served and how many slow connections were still
# open. Loopback only, bounded (about 40 s). Needs python3.
#   scripts/slowhttp.sh            (TTSERVER_BIN=path measures another build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
tt_build
tt_workdir slowhttp
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cat > "$work/slow.py" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(':', 1); port = int(port)
N, GAP = 300, 2.0
slow = []
for i in range(N):
    s = socket.socket(); s.bind((f'127.0.0.{1 + i % 5}', 0)); s.settimeout(5)
    try:
        s.connect((host, port)); slow.append(s)
    except OSError:
        pass
head = b'POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ' + b'a' * 200
def upload():
    s = socket.create_connection((host, port), timeout=5)
    b = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nfine\r\n--B--\r\n'
    try:
        s.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n'
                  + f'Content-Length: {len(b)}\r\n\r\n'.encode() + b)
        r = s.recv(4096)
        return b'"error_code":0' in r
    except OSError:
        return False
def alive():
    n = 0
    for s in slow:
        s.setblocking(False)
        try:
            n += 1 if s.recv(1) != b'' else 0
        except BlockingIOError:
            n += 1
        except OSError:
            pass
        s.settimeout(5)
    return n
start, pos, report = time.monotonic(), 0, {}
while time.monotonic() - start < 31:
    for s in slow:
        try: s.send(head[pos:pos + 1])
        except OSError: pass
    pos += 1
    t = time.monotonic() - start
    for at in (15, 30):
        if t >= at and at not in report:
            report[at] = (upload(), alive())
    time.sleep(GAP)
print(f"result scenario=slowhttp slow_conns={len(slow)} "
      f"upload_at_15s={'ok' if report[15][0] else 'refused'} slow_open_at_15s={report[15][1]} "
      f"upload_at_30s={'ok' if report[30][0] else 'refused'} slow_open_at_30s={report[30][1]}")
PY

tt_conf "$work/t.conf" MsfsRequireToken=false
tt_start server "$bin" run -c "$work/t.conf"
python3 "$work/slow.py" "${listen[msfs]}"
