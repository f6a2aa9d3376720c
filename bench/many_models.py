"""Many models in one folder, as ModelMesh packs them: N copies of the
bundled iris ONNX model, each its own model. Reports the time from spawning
the server to ready, RSS (total and per model), the repository index's
latency and an inference's on a random model, with all of them loaded.

Usage: python3 bench/many_models.py BIN [N]   (BIN: target/release/mlserver)
"""
import json, os, random, re, shutil, statistics, subprocess, sys, tempfile, threading, time, urllib.request

bin_ = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
here = os.path.dirname(os.path.abspath(__file__))
onnx = os.path.join(here, "..", "examples", "models", "iris-onnx", "model.onnx")
root = tempfile.mkdtemp(prefix="many-models-")
for i in range(n):
    d = os.path.join(root, f"m{i}")
    os.mkdir(d)
    shutil.copy(onnx, d)
    with open(os.path.join(d, "model-settings.json"), "w") as f:
        json.dump({"name": f"m{i}", "implementation": "mlserver_onnx.OnnxModel",
                   "parameters": {"uri": "./model.onnx"}}, f)

env = dict(os.environ, MLSERVER_HOST="127.0.0.1", MLSERVER_HTTP_PORT="0",
           MLSERVER_GRPC_PORT="0", MLSERVER_METRICS_PORT="0")
t0 = time.time()
p = subprocess.Popen([bin_, "start", root], env=env, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
addr = None
for line in p.stdout:
    m = re.search(r"HTTP server running on http://([0-9.:]+)", line)
    if m:
        addr = m.group(1)
        break
threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
while True:
    try:
        if urllib.request.urlopen(f"http://{addr}/v2/health/ready").status == 200:
            break
    except Exception:
        pass
    time.sleep(0.01)
ready = time.time() - t0


def rss_mib():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024


def timed(f, k):
    xs = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return statistics.median(xs), xs[int(len(xs) * 0.99) - 1]


def index():
    req = urllib.request.Request(f"http://{addr}/v2/repository/index", b"{}",
                                 {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())


at_ready = rss_mib()
loaded = sum(1 for m in index() if m["state"] == "READY")
body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()


def infer():
    url = f"http://{addr}/v2/models/m{random.randrange(n)}/infer"
    urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"})).read()


idx = timed(index, 20)
inf = timed(infer, 500)
print(f"{loaded} of {n} models ready {ready:.2f} s after spawning; RSS {at_ready:.0f} MiB "
      f"({at_ready * 1024 / n:.0f} KiB per model); repository index p50 / p99 {idx[0]:.1f} / {idx[1]:.1f} ms; "
      f"infer on a random model p50 / p99 {inf[0]:.2f} / {inf[1]:.2f} ms (Python urllib client); "
      f"RSS after {rss_mib():.0f} MiB")
p.terminate()
p.wait()
shutil.rmtree(root)
