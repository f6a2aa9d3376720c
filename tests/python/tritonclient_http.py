"""Talks to a running mlserver-rs with the real tritonclient[http] from PyPI.

Usage: python tritonclient_http.py HOST:PORT

Serves against examples/models: sum-model (FP32 row sums), echo-model,
text-model versions 1 (upper) and 2 (reverse). Exits non-zero on the first
mismatch; prints one line per check.
"""
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def texts(arr):
    """BYTES come back as bytes in binary mode and as str in JSON mode."""
    return [v.decode() if isinstance(v, bytes) else v for v in arr]


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def main(url):
    client = httpclient.InferenceServerClient(url=url)

    check("is_server_live", client.is_server_live())
    check("is_server_ready", client.is_server_ready())
    check("is_model_ready sum-model", client.is_model_ready("sum-model"))
    check("is_model_ready text-model v2", client.is_model_ready("text-model", "2"))
    check("is_model_ready unknown", not client.is_model_ready("no-such-model"))

    meta = client.get_server_metadata()
    check("server metadata", "binary_tensor_data" in meta["extensions"], meta)
    mmeta = client.get_model_metadata("sum-model")
    check("model metadata", mmeta["name"] == "sum-model" and mmeta["inputs"][0]["name"] == "input", mmeta)

    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]], dtype=np.float32)
    for binary in (True, False):
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = httpclient.InferRequestedOutput("output", binary_data=binary)
        res = client.infer("sum-model", [inp], outputs=[out], request_id=f"req-{binary}")
        got = res.as_numpy("output")
        check(f"sum binary={binary}", got.shape == (2, 1) and np.allclose(got[:, 0], x.sum(axis=1)), got)
        check(f"request id echoed binary={binary}", res.get_response()["id"] == f"req-{binary}")

    # No requested outputs: tritonclient asks for binary outputs by default.
    inp = httpclient.InferInput("input", [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    res = client.infer("sum-model", [inp])
    check("default outputs", res.as_numpy("output")[0, 0] == 4.0)

    # Compressed request and response.
    res = client.infer("sum-model", [inp], request_compression_algorithm="gzip",
                       response_compression_algorithm="gzip")
    check("gzip both ways", res.as_numpy("output")[0, 0] == 4.0)
    res = client.infer("sum-model", [inp], request_compression_algorithm="deflate")
    check("deflate request", res.as_numpy("output")[0, 0] == 4.0)

    # Every numeric datatype through the echo model, binary and JSON.
    for dtype, triton in [(np.bool_, "BOOL"), (np.uint8, "UINT8"), (np.uint16, "UINT16"),
                          (np.uint32, "UINT32"), (np.uint64, "UINT64"), (np.int8, "INT8"),
                          (np.int16, "INT16"), (np.int32, "INT32"), (np.int64, "INT64"),
                          (np.float16, "FP16"), (np.float32, "FP32"), (np.float64, "FP64")]:
        data = (np.arange(6).reshape(2, 3) % 2 == 1) if dtype is np.bool_ else np.arange(6, dtype=dtype).reshape(2, 3)
        for binary in (True, False):
            if triton == "FP16" and not binary:
                continue  # tritonclient refuses FP16 as JSON
            inp = httpclient.InferInput("input", [2, 3], triton)
            inp.set_data_from_numpy(data, binary_data=binary)
            out = httpclient.InferRequestedOutput("output", binary_data=binary)
            res = client.infer("echo-model", [inp], outputs=[out])
            got = res.as_numpy("output")
            check(f"echo {triton} binary={binary}", got.dtype == data.dtype and np.array_equal(got, data),
                  (got, got.dtype))

    # BYTES, versions, two outputs.
    words = np.array([b"hello", "w\u00f6rld".encode()], dtype=np.object_)
    for binary in (True, False):
        inp = httpclient.InferInput("text", [2], "BYTES")
        inp.set_data_from_numpy(words, binary_data=binary)
        outs = [httpclient.InferRequestedOutput("output", binary_data=binary),
                httpclient.InferRequestedOutput("length", binary_data=binary)]
        res = client.infer("text-model", [inp], outputs=outs, model_version="1")
        check(f"text v1 binary={binary}", texts(res.as_numpy("output")) == ["HELLO", "W\u00d6RLD"],
              res.as_numpy("output"))
        check(f"text lengths binary={binary}", list(res.as_numpy("length")) == [5, 5])
        res = client.infer("text-model", [inp], outputs=outs, model_version="2")
        check(f"text v2 binary={binary}", texts(res.as_numpy("output")) == ["olleh", "dlr\u00f6w"])
        check(f"model_version echoed binary={binary}", res.get_response()["model_version"] == "2")

    # Errors surface as InferenceServerException with the server's message.
    try:
        client.infer("no-such-model", [inp])
        check("unknown model raises", False)
    except InferenceServerException as e:
        check("unknown model raises", "Model no-such-model not found" in str(e), str(e))

    # Off the declared datatype (FP32): as under MLServer, it reaches the
    # model as sent (the server's strict_inputs setting would refuse it).
    loose = httpclient.InferInput("input", [1, 2], "FP64")
    loose.set_data_from_numpy(np.ones((1, 2), dtype=np.float64))
    result = client.infer("sum-model", [loose]).as_numpy("output")
    check("loose datatype reaches the model", result.tolist() == [[2.0]], result)

    # Triton's configuration and statistics extensions.
    check("extensions listed", {"model_configuration", "statistics"} <= set(meta["extensions"]), meta)
    config = client.get_model_config("sum-model")
    check("model config", config["name"] == "sum-model" and config["max_batch_size"] == 0
          and config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, -1]}]
          and config["output"][0]["data_type"] == "TYPE_FP32", config)
    stats = client.get_inference_statistics("sum-model")["model_stats"]
    check("statistics of one model", len(stats) == 1 and stats[0]["name"] == "sum-model", stats)
    inference = stats[0]["inference_stats"]
    # Six successful sum-model inferences above; the unknown-model one is
    # not this model's.
    check("statistics count successes", inference["success"]["count"] == 6
          and stats[0]["inference_count"] == 6 and stats[0]["execution_count"] == 6, stats)
    check("statistics have durations", all(inference[k]["ns"] > 0 for k in
          ("success", "compute_input", "compute_infer", "compute_output"))
          and inference["queue"]["count"] == 6, inference)
    check("statistics by batch size", stats[0]["batch_stats"][0]["batch_size"] == 1
          and stats[0]["batch_stats"][0]["compute_infer"]["count"] == 6, stats)
    check("last inference", stats[0]["last_inference"] > 1_600_000_000_000, stats)
    every = client.get_inference_statistics()["model_stats"]
    check("statistics of every model", {"sum-model", "echo-model"} <= {m["name"] for m in every}, every)
    try:
        client.get_model_config("no-such-model")
        check("config of an unknown model raises", False)
    except InferenceServerException as e:
        check("config of an unknown model raises", "not found" in str(e), str(e))

    # Repository extension.
    index = client.get_model_repository_index()
    names = sorted({m["name"] for m in index})
    check("repository index", {"sum-model", "echo-model", "text-model"} <= set(names), index)
    client.unload_model("echo-model")
    check("unload", not client.is_model_ready("echo-model"))
    client.load_model("echo-model")
    check("load", client.is_model_ready("echo-model"))

    print("all tritonclient checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
