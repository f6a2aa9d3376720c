"""Talks to a running mlserver-rs with the real tritonclient[grpc] from PyPI.

Usage: python tritonclient_grpc.py HOST:PORT   (the gRPC port)

Serves against examples/models, like tritonclient_http.py. tritonclient's
gRPC client always sends raw_input_contents and reads only
raw_output_contents, so this checks the raw path both ways.
"""
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def texts(arr):
    return [v.decode() if isinstance(v, bytes) else v for v in arr]


def main(url):
    client = grpcclient.InferenceServerClient(url=url)

    check("is_server_live", client.is_server_live())
    check("is_server_ready", client.is_server_ready())
    check("is_model_ready sum-model", client.is_model_ready("sum-model"))
    check("is_model_ready text-model v2", client.is_model_ready("text-model", "2"))

    meta = client.get_server_metadata(as_json=True)
    check("server metadata", "binary_tensor_data" in meta["extensions"], meta)
    mmeta = client.get_model_metadata("sum-model", as_json=True)
    check("model metadata", mmeta["inputs"][0]["name"] == "input"
          and mmeta["inputs"][0]["shape"] == ["-1", "-1"], mmeta)

    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]], dtype=np.float32)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    res = client.infer("sum-model", [inp], outputs=[grpcclient.InferRequestedOutput("output")],
                       request_id="grpc-1")
    check("sum", np.array_equal(res.as_numpy("output"), np.array([[6.0], [15.5]], dtype=np.float32)),
          res.as_numpy("output"))
    check("request id echoed", res.get_response().id == "grpc-1")
    check("model name echoed", res.get_response().model_name == "sum-model")

    dtypes = [(np.bool_, "BOOL"), (np.uint8, "UINT8"), (np.uint16, "UINT16"), (np.uint32, "UINT32"),
              (np.uint64, "UINT64"), (np.int8, "INT8"), (np.int16, "INT16"), (np.int32, "INT32"),
              (np.int64, "INT64"), (np.float16, "FP16"), (np.float32, "FP32"), (np.float64, "FP64")]
    for np_type, triton_type in dtypes:
        data = np.array([[1, 0, 1], [0, 1, 1]]).astype(np_type)
        inp = grpcclient.InferInput("x", list(data.shape), triton_type)
        inp.set_data_from_numpy(data)
        res = client.infer("echo-model", [inp])
        out = res.as_numpy("output")
        check(f"echo {triton_type}", out is not None and out.dtype == data.dtype
              and np.array_equal(out, data), out)

    words = np.array(["hello", "w\u00f6rld"], dtype=np.object_)
    inp = grpcclient.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(words)
    res = client.infer("text-model", [inp], model_version="1")
    check("text v1", texts(res.as_numpy("output")) == ["HELLO", "W\u00d6RLD"], res.as_numpy("output"))
    check("text lengths", list(res.as_numpy("length")) == [5, 5], res.as_numpy("length"))
    res = client.infer("text-model", [inp], model_version="2")
    check("text v2", texts(res.as_numpy("output")) == ["olleh", "dlr\u00f6w"])
    check("model_version echoed", res.get_response().model_version == "2")

    # Large payload: past gRPC's usual 4 MiB limit.
    big = np.ones((1, 2 * 1024 * 1024), dtype=np.float32)
    inp = grpcclient.InferInput("input", list(big.shape), "FP32")
    inp.set_data_from_numpy(big)
    res = client.infer("sum-model", [inp])
    check("8 MiB request", float(res.as_numpy("output")[0][0]) == float(2 * 1024 * 1024))

    try:
        client.infer("no-such-model", [inp])
        check("unknown model raises", False)
    except InferenceServerException as e:
        check("unknown model raises", "Model no-such-model not found" in e.message()
              and "NOT_FOUND" in str(e.status()), str(e))

    # Off the declared datatype (FP32): as under MLServer, it reaches the
    # model as sent (the server's strict_inputs setting would refuse it).
    loose = grpcclient.InferInput("input", [1, 2], "FP64")
    loose.set_data_from_numpy(np.ones((1, 2), dtype=np.float64))
    result = client.infer("sum-model", [loose]).as_numpy("output")
    check("loose datatype reaches the model", result.tolist() == [[2.0]], result)

    # Triton's configuration and statistics extensions.
    config = client.get_model_config("sum-model", as_json=True)["config"]
    check("model config", config["name"] == "sum-model"
          and config["input"][0] == {"name": "input", "data_type": "TYPE_FP32", "dims": ["-1", "-1"]},
          config)
    stats = client.get_inference_statistics("sum-model", as_json=True)["model_stats"]
    check("statistics", len(stats) == 1 and int(stats[0]["inference_count"]) >= 1
          and int(stats[0]["inference_stats"]["success"]["count"]) >= 1
          and int(stats[0]["inference_stats"]["compute_infer"]["ns"]) > 0, stats)
    every = client.get_inference_statistics(as_json=True)["model_stats"]
    check("statistics of every model", {"sum-model", "echo-model"} <= {m["name"] for m in every}, every)

    index = client.get_model_repository_index(as_json=True)
    names = {m["name"] for m in index.get("models", [])}
    check("repository index", {"sum-model", "echo-model", "text-model"} <= names, index)
    client.unload_model("echo-model")
    try:
        ready = client.is_model_ready("echo-model")
    except InferenceServerException:
        ready = False
    check("unload", not ready)
    client.load_model("echo-model")
    check("load", client.is_model_ready("echo-model"))

    # Streaming: tritonclient's stream speaks Triton's ModelStreamInferResponse,
    # which MLServer's proto (and ours) does not; not exercised here.

    print("all tritonclient grpc checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
