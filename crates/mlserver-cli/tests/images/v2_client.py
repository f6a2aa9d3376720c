"""A V2 client run inside a container (the server's ports stay those of the
image or manifest): `v2_client.py rest|grpc PORT MODEL REQUEST_JSON`, where
REQUEST_JSON is a V2 JSON request. Waits up to 120 s for the model to be
ready, infers, and prints the response as V2 JSON (the gRPC one converted by
MLServer's own converters). `v2_client.py raw PORT METHOD PATH [BODY]` makes
one plain HTTP call (a custom endpoint) and prints its status and body."""

import json
import sys
import time
import urllib.error
import urllib.request

if sys.argv[1] == "raw":
    port, method, path = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    data = sys.argv[5].encode() if len(sys.argv) > 5 else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            print(json.dumps({"status": r.status, "body": r.read().decode()}))
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "body": e.read().decode()}))
    sys.exit(0)

transport, port, model, request = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
base = f"http://127.0.0.1:{port}"


def ready_rest():
    try:
        with urllib.request.urlopen(f"{base}/v2/models/{model}/ready", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def infer_rest():
    req = urllib.request.Request(
        f"{base}/v2/models/{model}/infer",
        data=request.encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return {"status": r.status, "body": json.loads(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read() or b"null")}


def grpc_stub():
    import grpc
    from mlserver.grpc import dataplane_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return dataplane_pb2_grpc.GRPCInferenceServiceStub(channel)


def ready_grpc():
    from mlserver.grpc import dataplane_pb2 as pb

    try:
        return grpc_stub().ModelReady(pb.ModelReadyRequest(name=model), timeout=5).ready
    except Exception:
        return False


def infer_grpc():
    import grpc
    from mlserver import types
    from mlserver.grpc.converters import (
        ModelInferRequestConverter,
        ModelInferResponseConverter,
    )

    message = ModelInferRequestConverter.from_types(
        types.InferenceRequest.model_validate_json(request), model_name=model
    )
    try:
        response = grpc_stub().ModelInfer(message, timeout=60)
    except grpc.RpcError as e:
        return {"status": e.code().name, "body": {"error": e.details()}}
    converted = ModelInferResponseConverter.to_types(response)
    return {"status": "OK", "body": json.loads(converted.model_dump_json(exclude_none=True))}


ready, infer = (ready_rest, infer_rest) if transport == "rest" else (ready_grpc, infer_grpc)
deadline = time.time() + 120
while not ready():
    if time.time() > deadline:
        print(json.dumps({"status": "not ready after 120 s"}))
        sys.exit(0)
    time.sleep(0.25)
print(json.dumps(infer()))
