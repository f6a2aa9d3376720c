"""Fast paths for tensor contents: raw contents read from and written to
shared memory (`shm.py`), and tensors kept as NumPy arrays until something
asks for their elements as a list.

MLServer hands a model each input's `data` as a `TensorData` whose `root`
is a list of Python numbers, and `NumpyCodec` turns that list into an array
(`np.array(list)`) and an array back into a list (`tolist()`): for a large
tensor, most of a call's time. Here a numeric tensor's `data` is a
`TensorData` (a subclass of MLServer's) that holds the array and builds the
list the first time `root` is read, by anything: the model, MLServer's
codecs, pydantic's serialisation, equality, copies, pickling. What the
model reads is what MLServer hands it; `NumpyCodec` takes the array without
the list, and a reply's bytes come from the array without the list.

Every array handed out is the model's: the pending array is replaced by a
copy first (a `memcpy`), so a model that changes it and decodes again, or
reads the list afterwards, sees what MLServer would show it. An input's
first array is built over the shared memory itself.

Part of the fast paths: off with `MLSERVER_RS_FAST_PATHS=0`. The one thing
a model can tell: `type(input.data)` is a subclass of `TensorData`
(`isinstance` holds).
"""

import weakref

import numpy as np

from . import fast, mlserver_api, shm

# Datatypes whose raw bytes are an array of one NumPy dtype, as
# `mlserver.raw` packs them (native order; BOOL left out: its bytes may
# hold values other than 0 and 1, which a list reads as True).
_DTYPES = {
    "UINT8": np.dtype("uint8"),
    "UINT16": np.dtype("uint16"),
    "UINT32": np.dtype("uint32"),
    "UINT64": np.dtype("uint64"),
    "INT8": np.dtype("int8"),
    "INT16": np.dtype("int16"),
    "INT32": np.dtype("int32"),
    "INT64": np.dtype("int64"),
    "FP16": np.dtype("float16"),
    "FP32": np.dtype("float32"),
    "FP64": np.dtype("float64"),
}

# The arrays of lazy `TensorData` not read as lists yet, by the object's
# id: `(flat array, NaN written as None)`. Dropped with the object.
_PENDING = {}


def _materialize(data):
    """The list `root` holds, built from the pending array, as MLServer
    builds it (`tolist()`; NumPy's NaN as None where `NumpyCodec` writes
    so)."""
    array, nan_as_none = _PENDING.pop(id(data))
    values = array.tolist()
    if nan_as_none and array.dtype.kind == "f" and np.isnan(array).any():
        values = [None if v != v else v for v in values]
    data.__dict__["root"] = values
    return values


def pending(data):
    """The flat array a lazy `TensorData` still holds (its list not built
    yet), else None."""
    if type(data) is not _Lazy.cls:
        return None
    entry = _PENDING.get(id(data))
    return None if entry is None else entry[0]


class _Lazy:
    cls = None


def _lazy_class():
    if _Lazy.cls is not None:
        return _Lazy.cls
    TensorData = mlserver_api.names().types.TensorData

    def plain(value):
        if type(value) is not _Lazy.cls:
            return value
        out = TensorData.model_construct(root=value.root)
        object.__setattr__(out, "__pydantic_fields_set__", set(value.__pydantic_fields_set__))
        return out

    class LazyTensorData(TensorData):
        def __getattr__(self, name):
            if name == "root" and id(self) in _PENDING:
                return _materialize(self)
            return super().__getattr__(name)

        def __eq__(self, other):
            return plain(self) == plain(other)

        def __repr__(self):
            return repr(plain(self))

        def __str__(self):
            return str(plain(self))

        def __copy__(self):
            return plain(self).__copy__()

        def __deepcopy__(self, memo=None):
            return plain(self).__deepcopy__(memo)

        def __getstate__(self):
            self.root  # noqa: B018 - built, so the state holds it
            return super().__getstate__()

        def __reduce_ex__(self, protocol):
            # Unpickled as MLServer's own class, wherever that happens.
            return TensorData, (self.root,)

    LazyTensorData.__name__ = LazyTensorData.__qualname__ = "TensorData"
    _Lazy.cls = LazyTensorData
    return LazyTensorData


def lazy(array, nan_as_none=False):
    """A `TensorData` of `array`'s elements (flat), built as a list only
    when read."""
    cls = _lazy_class()
    data = cls.model_construct(root=None)
    del data.__dict__["root"]
    _PENDING[id(data)] = (array, nan_as_none)
    weakref.finalize(data, _PENDING.pop, id(data), None)
    return data


def _hand_out(data, array):
    """`array` for a model to keep (writable, as `np.array` makes it): the
    object keeps a copy for its list, or hands out one."""
    if not array.flags.writeable:
        return array.copy()
    _PENDING[id(data)] = (array.copy(), _PENDING[id(data)][1])
    return array


class Region:
    """A raw entry in the shared request area."""

    __slots__ = ("areas", "offset", "length")

    def __init__(self, areas, offset: int, length: int):
        self.areas = areas
        self.offset = offset
        self.length = length

    def to_bytes(self) -> bytes:
        return self.areas.request_bytes(self.offset, self.length)


def unpack_lazy(datatype, shape, raw):
    """`TensorData(mlserver.raw.unpack(...))` of a raw entry (bytes, or a
    `Region` of shared memory) as a lazy `TensorData`, or None where only
    `raw.unpack` reads it as MLServer does."""
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        return None
    size = 1
    for dim in shape:
        size *= dim
    if isinstance(raw, Region):
        if raw.length != size * dtype.itemsize:
            return None
        array = raw.areas.request_array(np, dtype, size, raw.offset)
    elif len(raw) == size * dtype.itemsize:
        array = np.frombuffer(raw, dtype, size)
    else:
        return None
    return lazy(array)


def raw_bytes(output):
    """A numeric output's raw bytes from its pending array (as
    `mlserver.raw.pack` would write its list), or None."""
    array = _output_array(output)
    return None if array is None else array.tobytes()


def _output_array(output):
    dtype = _DTYPES.get(output.datatype)
    array = pending(output.data)
    if dtype is None or array is None or array.dtype != dtype:
        return None
    size = 1
    for dim in output.shape:
        size *= dim
    return array if array.size == size else None


def pack_shared(output, areas):
    """The raw bytes of a numeric output written into the shared reply
    area: `(offset, length)`, or None (too small, no room, not numeric:
    the caller packs it into the frame). `mlserver.raw.pack`'s format:
    the datatype's native-order elements."""
    datatype = output.datatype
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        return None
    array = _output_array(output)
    if array is not None:
        size = array.size
    else:
        data = getattr(output.data, "root", output.data)
        size = len(data)
    length = size * dtype.itemsize
    if length < shm.MIN_SHARED:
        return None
    offset = areas.alloc(length)
    if offset is None:
        return None
    try:
        if array is not None:
            np.frombuffer(areas.replies, dtype, size, offset)[:] = array
        else:
            # As `struct.pack` would: refuse what does not fit the type.
            packer = fast.raw_packer(datatype, size)
            packer.pack_into(areas.replies, offset, *data)
    except BaseException:
        areas.release(offset)
        raise
    return offset, length


_ORIGINAL = {}
# The datatype `NumpyCodec` gives an array of each dtype, as stored (see
# `install`).
_DATATYPE_OF = {}


def install() -> None:
    """Puts the shortcuts into MLServer's `NumpyCodec` (once)."""
    if _ORIGINAL or not fast.ENABLED:
        return
    from mlserver.codecs import numpy as numpy_codec

    codec = numpy_codec.NumpyCodec
    types = mlserver_api.names().types
    for dtype in _DTYPES.values():
        # As `ResponseOutput` validation stores `to_datatype(dtype)`.
        _DATATYPE_OF[str(dtype)] = types.ResponseOutput(
            name="probe", shape=[0], datatype=numpy_codec.to_datatype(dtype), data=[]
        ).datatype
    _ORIGINAL["decode_input"] = codec.decode_input.__func__
    _ORIGINAL["encode_output"] = codec.encode_output.__func__
    codec.decode_input = classmethod(_decode_input)
    if _encode_output_matches(codec):
        codec.encode_output = classmethod(_encode_output)


def _decode_input(cls, request_input):
    """`NumpyCodec.decode_input`: `np.array(list, dtype).reshape(shape)`,
    which for a lazy input is its array (MLServer's `to_dtype` of a numeric
    datatype is the array's dtype already)."""
    data = request_input.data
    array = pending(data)
    if array is not None and array.dtype == _DTYPES.get(request_input.datatype):
        return _hand_out(data, array).reshape(request_input.shape)
    return _ORIGINAL["decode_input"](cls, request_input)


def _encode_output(cls, name, payload, **kwargs):
    """`NumpyCodec.encode_output`, for a numeric array: the same output,
    its data a lazy `TensorData` of `payload.flatten()` (MLServer's
    `tolist()` of it, NaN as None, when read)."""
    datatype = _DATATYPE_OF.get(str(getattr(payload, "dtype", None)))
    if datatype is None or not isinstance(payload, np.ndarray):
        return _ORIGINAL["encode_output"](cls, name, payload, **kwargs)
    m = mlserver_api.names()
    shape = list(payload.shape)
    if len(shape) <= 1:
        shape = shape + [1]
    return fast.construct(
        m.types.ResponseOutput,
        name=name,
        datatype=datatype,
        shape=shape,
        data=lazy(payload.flatten(), nan_as_none=True),
        parameters=m.Parameters(content_type=cls.ContentType),
    )


def _encode_output_matches(codec) -> bool:
    """Whether `_encode_output` builds what MLServer's does, on probes of
    every dtype, NaN included (else it is not installed)."""
    try:
        for dtype in _DTYPES.values():
            for shape in ((3,), (2, 2), (1, 0), ()):
                payload = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
                if dtype.kind == "f" and payload.size:
                    payload.flat[0] = np.nan
                theirs = _ORIGINAL["encode_output"](codec, "probe", payload)
                ours = _encode_output(codec, "probe", payload)
                if fields(ours) != fields(theirs):
                    return False
        return True
    except Exception:
        return False


def fields(model):
    """Everything that tells two pydantic objects apart (class, fields in
    order, fields set, extras, private attributes), recursively; a lazy
    `TensorData` as the list it stands for."""
    if type(model) is _Lazy.cls:
        return (
            "TensorData",
            [("root", fields(model.root))],
            sorted(model.__pydantic_fields_set__),
            model.__pydantic_extra__,
            model.__pydantic_private__,
        )
    if hasattr(model, "__pydantic_fields_set__"):
        return (
            type(model).__name__,
            [(k, fields(v)) for k, v in model.__dict__.items()],
            sorted(model.__pydantic_fields_set__),
            model.__pydantic_extra__,
            model.__pydantic_private__,
        )
    if isinstance(model, list):
        return ["list"] + [fields(v) for v in model]
    if isinstance(model, float) and model != model:
        return ("nan",)
    return (type(model).__name__, model)
