"""ModelMesh's MLServer adapter, as the runtime sees it (modelmesh-kserve.md
§4), run inside the runtime's container, over gRPC on PORT, in two phases:

- `adapter.py status PORT`: RuntimeStatus's calls when ModelMesh starts
  (ServerReady until true, RepositoryIndex(ready=true), RepositoryModelUnload
  of every model listed, ServerMetadata);
- `adapter.py load PORT MODEL_ID REQUEST_JSON [keep]`, once the test has
  written the files the adapter writes (`_mlserver_models/<id>/...`):
  RepositoryModelLoad(MODEL_ID), ModelInfer with typed contents as
  kserve/rest-proxy sends them (REQUEST_JSON's inputs; the model id in
  model_name, as ModelMesh injects it), then RepositoryModelUnload(MODEL_ID)
  unless `keep`.

Prints what each step returned, as JSON."""

import json
import sys
import time

import grpc
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.grpc import dataplane_pb2_grpc

phase, port = sys.argv[1], int(sys.argv[2])
stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(
    grpc.insecure_channel(f"127.0.0.1:{port}")
)
result = {}

if phase == "status":
    deadline = time.time() + 120
    while True:
        try:
            if stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready:
                break
        except grpc.RpcError:
            pass
        if time.time() > deadline:
            print(json.dumps({"error": "ServerReady never true"}))
            sys.exit(0)
        time.sleep(0.25)
    index = stub.RepositoryIndex(pb.RepositoryIndexRequest(repository_name="", ready=True))
    result["index"] = [m.name for m in index.models]
    result["unloaded"] = {}
    for name in result["index"]:
        try:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name))
            result["unloaded"][name] = "OK"
        except grpc.RpcError as e:
            # The adapter treats NOT_FOUND and INVALID_ARGUMENT as "already gone".
            result["unloaded"][name] = e.code().name
    result["server_version"] = stub.ServerMetadata(pb.ServerMetadataRequest()).version
    print(json.dumps(result))
    sys.exit(0)

model_id, request = sys.argv[3], json.loads(sys.argv[4])
keep = sys.argv[5:] == ["keep"]
try:
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=model_id), timeout=120)
    result["load"] = "OK"
except grpc.RpcError as e:
    result["load"] = f"{e.code().name}: {e.details()}"
    print(json.dumps(result))
    sys.exit(0)

CONTENTS = {
    "FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents",
    "INT32": "int_contents", "BYTES": "bytes_contents", "BOOL": "bool_contents",
}
inputs = []
for tensor in request["inputs"]:
    data = tensor["data"]
    if tensor["datatype"] == "BYTES":
        data = [d.encode() for d in data]
    inputs.append(
        pb.ModelInferRequest.InferInputTensor(
            name=tensor["name"],
            datatype=tensor["datatype"],
            shape=tensor["shape"],
            contents=pb.InferTensorContents(**{CONTENTS[tensor["datatype"]]: data}),
        )
    )
try:
    response = stub.ModelInfer(pb.ModelInferRequest(model_name=model_id, inputs=inputs), timeout=60)
    outputs = {}
    for out in response.outputs:
        field = CONTENTS[out.datatype]
        values = list(getattr(out.contents, field))
        if out.datatype == "BYTES":
            values = [v.decode() for v in values]
        outputs[out.name] = {"shape": list(out.shape), "datatype": out.datatype, "data": values}
    result["infer"] = outputs
except grpc.RpcError as e:
    result["infer"] = f"{e.code().name}: {e.details()}"

if not keep:
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=model_id))
    result["unload"] = "OK"
print(json.dumps(result))
