"""Small-request latency beside gzip bombs, and RSS after a burst of large
requests, on the release binary. Usage: python3 bench/hostile.py BIN MODELS"""
import json, os, subprocess, sys, threading, time, urllib.request, re, zlib, statistics

bin_, models = sys.argv[1], sys.argv[2]
env = dict(os.environ, MLSERVER_HOST="127.0.0.1", MLSERVER_HTTP_PORT="0", MLSERVER_GRPC_PORT="0", MLSERVER_METRICS_PORT="0")
p = subprocess.Popen([bin_, "start", models], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
addr = None
for line in p.stdout:
    m = re.search(r"HTTP server running on http://([0-9.:]+)", line)
    if m:
        addr = m.group(1); break
threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
url = f"http://{addr}/v2/models/sum-model/infer"
for _ in range(300):
    try:
        if urllib.request.urlopen(f"http://{addr}/v2/health/ready").status == 200: break
    except Exception: time.sleep(0.1)

def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
small = json.dumps({"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [1.0] * 16}]}).encode()
def one():
    t = time.perf_counter()
    r = urllib.request.urlopen(urllib.request.Request(url, small, {"Content-Type": "application/json"}))
    r.read(); assert r.status == 200
    return (time.perf_counter() - t) * 1000
def lat(n=400):
    xs = sorted(one() for _ in range(n))
    return statistics.median(xs), xs[int(n * 0.99) - 1]
# bomb: 1 GiB zeros, built from a repeated sync-flushed block
c = zlib.compressobj(9, zlib.DEFLATED, -15)
mib = b"\0" * (1 << 20)
first = c.compress(mib) + c.flush(zlib.Z_SYNC_FLUSH)
rep = c.compress(mib) + c.flush(zlib.Z_SYNC_FLUSH)
bomb = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + first + rep * 1023 + c.flush() + b"\0" * 8
for _ in range(200): one()
idle = rss()
base = lat()
stop = False
def bomber():
    while not stop:
        try:
            urllib.request.urlopen(urllib.request.Request(url, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}))
        except urllib.error.HTTPError as e:
            assert e.code == 413, e.code
bombers = [threading.Thread(target=bomber) for _ in range(2)]
for b in bombers: b.start()
time.sleep(0.5)
beside = lat()
stop = True
for b in bombers: b.join()
peak = rss()
# a burst of large requests: 32 x 8 MiB JSON bodies, 4 at a time
big = json.dumps({"inputs": [{"name": "input", "shape": [1, 1 << 20], "datatype": "FP32", "data": [0.5] * (1 << 20)}]}).encode()
def big_one():
    r = urllib.request.urlopen(urllib.request.Request(url, big, {"Content-Type": "application/json"})); r.read()
for _ in range(8):
    ts = [threading.Thread(target=big_one) for _ in range(4)]
    [t.start() for t in ts]; [t.join() for t in ts]
burst = rss()
t0 = time.time(); back = None
while time.time() - t0 < 30:
    if back is None and rss() <= 2 * idle: back = time.time() - t0
    time.sleep(0.25)
after = rss()
p.terminate(); p.wait()
print(f"bomb: {len(bomb)} bytes gzip of 1 GiB")
print(f"small request latency, ms (p50 / p99): alone {base[0]:.2f} / {base[1]:.2f}; beside two bombs in a loop {beside[0]:.2f} / {beside[1]:.2f}")
print(f"RSS MiB: idle {idle}, after the bombs {peak}, after 32 x 8 MiB requests {burst}, " + (f"within 2x of idle after {back:.1f} s, {after} MiB at 30 s" if back is not None else f"NOT within 2x of idle in 30 s ({after} MiB)"))
