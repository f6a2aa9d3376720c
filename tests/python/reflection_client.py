"""(Not named grpc_reflection.py: it would shadow the package.)
What grpcurl does, with grpcio-reflection: list the services through
server reflection, build the message types from the descriptors the server
sends, call ModelInfer with them. Usage: grpc_reflection.py ADDR MODEL.
Prints JSON: the services (v1alpha and v1), ModelInfer's reply."""

import json
import sys

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

address, model = sys.argv[1], sys.argv[2]
channel = grpc.insecure_channel(address)
database = ProtoReflectionDescriptorDatabase(channel)
services = sorted(database.get_services())
pool = DescriptorPool(database)
service = pool.FindServiceByName("inference.GRPCInferenceService")
method = service.methods_by_name["ModelInfer"]
Request = message_factory.GetMessageClass(method.input_type)
Response = message_factory.GetMessageClass(method.output_type)
request = json_format.ParseDict(
    {
        "model_name": model,
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [1, 2],
                "contents": {"fp32_contents": [1, 2]},
            }
        ],
    },
    Request(),
)
infer = channel.unary_unary(
    "/inference.GRPCInferenceService/ModelInfer",
    request_serializer=Request.SerializeToString,
    response_deserializer=Response.FromString,
)
reply = infer(request)

# grpc.reflection.v1 has the same messages as v1alpha, under a new name.
v1 = channel.stream_stream(
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
    response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
)
v1_services = []
for answer in v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
    v1_services = sorted(s.name for s in answer.list_services_response.service)

print(
    json.dumps(
        {
            "services": services,
            "v1_services": v1_services,
            "methods": [m.name for m in service.methods],
            "reply": json_format.MessageToDict(reply),
        }
    )
)
