"""The worker's fast paths: the same objects and bytes as MLServer's own
steps (`mlserver_api.py`), made with less work. Each falls back to MLServer's
step on anything it does not expect, so the error raised is MLServer's.

What they rely on, and so what to check on an MLServer or pydantic upgrade
(`tests/python/worker_check.py` compares every one with what it stands in
for, and the differential test runs with them on and off):

- pydantic's model internals: `__pydantic_fields__`, `__pydantic_fields_set__`,
  `__pydantic_extra__`, `__pydantic_private__`, `model_config["extra"]`
  (`construct`, checked against `model_construct` once per class);
- `mlserver.grpc.converters._get_value` and `mlserver.raw._DatatypeToCtype`
  (reading gRPC requests; without them, the converter runs);
- the field numbers of `proto/dataplane.proto` (`_response_to_pb`).

`MLSERVER_RS_FAST_PATHS=0` turns every one of them off (and the shared
memory transport, see `connection.py`): then only MLServer's steps run.
"""

import os
import struct
from types import SimpleNamespace

from . import mlserver_api, tensors

ENABLED = os.environ.get("MLSERVER_RS_FAST_PATHS", "1") != "0"


def request_from_pb(message, raw=None):
    """`ModelInferRequestConverter.to_types`: the fast reading below, and
    on any error the converter, which raises what MLServer raises.

    `raw`: the raw entries, when some are in shared memory (`tensors.Region`)
    rather than in the message."""
    m = mlserver_api.names()
    if ENABLED and getattr(m.converters, "_get_value", None) is not None:
        try:
            return _request_from_pb_fast(message, m, raw)
        except Exception:
            pass
    if raw is not None:
        del message.raw_input_contents[:]
        message.raw_input_contents.extend(
            entry.to_bytes() if isinstance(entry, tensors.Region) else entry for entry in raw
        )
    return mlserver_api.request_from_pb(message)


def response_to_pb(response, areas=None):
    """`ModelInferResponseConverter.from_types(response, use_raw=True)`,
    serialised: written directly, or by the converter where the direct
    writer does not take the response (the converter then takes or refuses
    it, with its own error). With `areas`, large raw outputs go to the
    shared reply area: then also, per raw entry, `(offset, length)` there
    or None for one left in the message (else None)."""
    if ENABLED:
        try:
            return _response_to_pb(response, areas)
        except Exception:
            pass
    return mlserver_api.response_to_pb(response), None


_RAW_CTYPES = None


def _raw_ctypes(m):
    """`raw._DatatypeToCtype` by datatype string (empty in a release without
    it: then every tensor goes through `raw.unpack` / `raw.pack`)."""
    global _RAW_CTYPES
    if _RAW_CTYPES is None:
        _RAW_CTYPES = {
            getattr(datatype, "value", datatype): ctype
            for datatype, ctype in getattr(m.raw, "_DatatypeToCtype", {}).items()
        }
    return _RAW_CTYPES


def _request_from_pb_fast(message, m, shared_raw=None):
    """The objects `_request_from_pb_exact` builds, built directly: each
    model from a prepared field dictionary (`construct`, a quarter of
    `model_construct`'s cost), raw contents unpacked with a cached
    `struct.Struct` of `mlserver.raw`'s format, straight into the input."""
    types = m.types
    _get_value = m.converters._get_value
    parameters = m.converters.ParametersConverter.to_types
    TensorData, RequestInput = types.TensorData, types.RequestInput
    raw = message.raw_input_contents if shared_raw is None else shared_raw
    raw_at = 0
    inputs = []
    for tensor in message.inputs:
        shape = list(tensor.shape)
        data = list(_get_value(tensor.contents, []))
        tensor_data = None
        if not data and raw:
            # `inject_raw`: an input without contents takes the next raw
            # entry (IndexError past the last, as there).
            entry = raw[raw_at]
            raw_at += 1
            tensor_data = tensors.unpack_lazy(tensor.datatype, shape, entry)
            if tensor_data is None:
                if isinstance(entry, tensors.Region):
                    entry = entry.to_bytes()
                data = _unpack_raw(m, tensor.datatype, shape, entry)
        if tensor_data is None:
            # What `TensorData(data)` builds, without validating every
            # element again (which copies the list).
            tensor_data = TensorData.model_construct(root=data)
        inputs.append(
            construct(
                RequestInput,
                name=tensor.name,
                shape=shape,
                datatype=tensor.datatype,
                parameters=parameters(tensor.parameters),
                data=tensor_data,
            )
        )
    request = construct(
        types.InferenceRequest,
        id=message.id,
        parameters=parameters(message.parameters),
        inputs=inputs,
    )
    if message.outputs:
        # Set after construction, as the converter does: `outputs` joins the
        # fields set.
        request.outputs = [
            construct(
                types.RequestOutput,
                name=output.name,
                parameters=parameters(output.parameters),
            )
            for output in message.outputs
        ]
    return request


# `struct.Struct`s of `mlserver.raw`'s tensor formats, by (datatype, shape).
_RAW_UNPACKERS = {}


def _unpack_raw(m, datatype, shape, raw):
    """`mlserver.raw.unpack` of one raw entry for a tensor: the same format
    (native order, as there), the same errors (through `raw.unpack` for
    anything not cached)."""
    key = (datatype, tuple(shape))
    unpacker = _RAW_UNPACKERS.get(key)
    if unpacker is None:
        ctype = _raw_ctypes(m).get(datatype)
        if ctype is None or len(_RAW_UNPACKERS) >= 256:
            return m.raw.unpack(SimpleNamespace(datatype=datatype, shape=shape), raw)
        size = 1
        for dim in shape:
            size *= dim
        unpacker = _RAW_UNPACKERS[key] = struct.Struct(f"{size}{ctype}")
    return list(unpacker.unpack(raw))


# How `construct` builds each model class (or `None`: through
# `model_construct`).
_CONSTRUCT_PLANS = {}
_object_setattr = object.__setattr__


def construct(cls, **values):
    """`cls.model_construct(**values)`, for values that are all fields by
    name. pydantic's walks the class's fields on every call; here that walk
    is done once per class (`_construct_plan`), which checks that both ways
    build the same object."""
    plan = _CONSTRUCT_PLANS.get(cls, False)
    if plan is False:
        plan = _CONSTRUCT_PLANS[cls] = _construct_plan(cls)
    if plan is None:
        return cls.model_construct(**values)
    defaults, required, extra = plan
    if not required.issubset(values):
        return cls.model_construct(**values)
    fields = defaults.copy()
    fields.update(values)
    obj = cls.__new__(cls)
    _object_setattr(obj, "__dict__", fields)
    _object_setattr(obj, "__pydantic_fields_set__", set(values))
    _object_setattr(obj, "__pydantic_extra__", {} if extra else None)
    _object_setattr(obj, "__pydantic_private__", None)
    return obj


def _construct_plan(cls):
    """The field defaults (in field order, with the required fields' places
    kept), the required names and whether extras are kept; `None` where
    `model_construct` does more than fill fields (aliases, default
    factories, post-init, root models) or builds something else."""
    try:
        if cls.__pydantic_root_model__ or cls.__pydantic_post_init__:
            return None
        defaults, required = {}, set()
        for name, field in cls.__pydantic_fields__.items():
            if field.alias not in (None, name) or field.default_factory is not None:
                return None
            if field.is_required():
                required.add(name)
                defaults[name] = None
            else:
                defaults[name] = field.default
        extra = cls.model_config.get("extra") == "allow"
        plan = (defaults, frozenset(required), extra)
        # Both ways, on the same values: the same object, or no plan.
        probe = {name: object() for name in required}
        theirs = cls.model_construct(**probe)
        _CONSTRUCT_PLANS[cls] = plan
        ours = construct(cls, **probe)
        same = all(
            getattr(ours, attr, None) == getattr(theirs, attr, None)
            for attr in (
                "__dict__",
                "__pydantic_fields_set__",
                "__pydantic_extra__",
                "__pydantic_private__",
            )
        ) and list(ours.__dict__) == list(theirs.__dict__)
        return plan if same else None
    except Exception:
        return None


# A serialised `ModelInferResponse`, written directly.
#
# `ModelInferResponseConverter.from_types(response, use_raw=True)` builds
# protobuf objects field by field (a third of a small request's cost in the
# worker) only to serialise them at once. This writes the same message: the
# same fields under the same conditions (`if parameters:`, ids and versions
# unless None, parameters as `ParametersConverter` keeps them: bools, strings
# and int64s, the rest dropped), with the raw contents packed by MLServer's
# own `raw.pack`. Anything it does not expect (a value protobuf would coerce
# or refuse) raises `_Unusual`, and the caller uses the converter instead.
# Field numbers: proto/dataplane.proto.


class _Unusual(Exception):
    pass


# One-byte varints and field tags, the common case.
_SMALL = [bytes((i,)) for i in range(0x80)]
_TAGS = [bytes(((n << 3 | 2),)) for n in range(16)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int64(value: int) -> bytes:
    if not -(1 << 63) <= value < (1 << 63):
        raise _Unusual
    return _varint(value & 0xFFFFFFFFFFFFFFFF)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (numbers under 16: one-byte tags)."""
    length = len(payload)
    return _TAGS[number] + (_SMALL[length] if length < 0x80 else _varint(length)) + payload


def _text(value) -> bytes:
    if type(value) is not str:
        raise _Unusual
    return value.encode("utf-8")


def _parameter_items(parameters):
    """`parameters.model_dump(by_alias=True).items()` (MLServer's
    `model_dump` leaves out unset and None fields), read from the object for
    a plain `Parameters` without extra fields (no aliases, no nesting to
    convert: what the codecs write); anything else through `model_dump`."""
    if type(parameters) is mlserver_api.names().Parameters and not parameters.__pydantic_extra__:
        fields_set = parameters.__pydantic_fields_set__
        values = parameters.__dict__
        return [
            (name, values[name])
            for name in type(parameters).model_fields
            if name in fields_set and values.get(name) is not None
        ]
    return parameters.model_dump(by_alias=True).items()


def _parameters(number: int, parameters) -> bytes:
    """A `map<string, InferParameter>` field, as `_merge_map` fills it."""
    out = []
    for key, value in _parameter_items(parameters):
        if isinstance(value, bool):
            param = b"\x08" + (b"\x01" if value else b"\x00")
        elif isinstance(value, str):
            param = _field(3, _text(value))
        elif isinstance(value, int):
            if type(value) is not int:
                raise _Unusual
            param = b"\x10" + _int64(value)
        else:
            continue
        out.append(_field(number, _field(1, _text(key)) + _field(2, param)))
    return b"".join(out)


# `struct.Struct`s of `mlserver.raw`'s tensor formats, by format; bounded.
_RAW_FORMATS = {}


def raw_packer(datatype, size):
    """The `struct.Struct` `raw._tensor_format` builds for a numeric tensor
    of `size` elements (the element count, then the datatype's native
    struct code), cached; None for a datatype only `raw.pack` packs."""
    ctype = _raw_ctypes(mlserver_api.names()).get(datatype) if datatype != "BYTES" else None
    if ctype is None:
        return None
    tensor_format = f"{size}{ctype}"
    packer = _RAW_FORMATS.get(tensor_format)
    if packer is None:
        if len(_RAW_FORMATS) >= 256:
            _RAW_FORMATS.clear()
        packer = _RAW_FORMATS[tensor_format] = struct.Struct(tensor_format)
    return packer


def _pack(output) -> bytes:
    """`mlserver.raw.pack(output)`: from a lazy output's array, or by a
    cached `struct.Struct` for a numeric tensor."""
    packed = tensors.raw_bytes(output)
    if packed is not None:
        return packed
    size = 1
    for dim in output.shape:
        size *= dim
    packer = raw_packer(output.datatype, size)
    if packer is None:
        return mlserver_api.names().raw.pack(output)
    data = output.data
    return packer.pack(*getattr(data, "root", data))


def _response_to_pb(response, areas):
    lent = []
    try:
        return _write_response(response, areas, lent)
    except BaseException:
        for offset, _ in lent:
            areas.release(offset)
        raise


def _write_response(response, areas, lent):
    out = []
    if response.model_name:
        out.append(_field(1, _text(response.model_name)))
    elif type(response.model_name) is not str:
        raise _Unusual
    if response.model_version is not None and response.model_version != "":
        out.append(_field(2, _text(response.model_version)))
    if response.id is not None and response.id != "":
        out.append(_field(3, _text(response.id)))
    if response.parameters:
        out.append(_parameters(4, response.parameters))
    raw = []
    shared = []
    for output in response.outputs:
        datatype = output.datatype
        if type(datatype) is not str or datatype not in _DATATYPES:
            raise _Unusual
        tensor = [_field(1, _text(output.name))] if output.name else []
        tensor.append(_DATATYPE_FIELDS[datatype])
        shape = output.shape
        if type(shape) is not list:
            raise _Unusual
        if shape:
            dims = []
            for d in shape:
                if type(d) is not int:
                    raise _Unusual
                dims.append(_int64(d))
            tensor.append(_field(3, b"".join(dims)))
        if output.parameters:
            tensor.append(_parameters(4, output.parameters))
        # The contents message is set, and empty: the data is in raw.
        tensor.append(b"\x2a\x00")
        out.append(_field(5, b"".join(tensor)))
        region = tensors.pack_shared(output, areas) if areas is not None else None
        if region is None:
            raw.append(_field(6, _pack(output)))
        else:
            lent.append(region)
        shared.append(region)
    message = b"".join(out) + b"".join(raw)
    return message, (shared if lent else None)


_DATATYPES = frozenset(
    "BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 BYTES".split()
)
_DATATYPE_FIELDS = {datatype: _field(2, datatype.encode()) for datatype in _DATATYPES}
