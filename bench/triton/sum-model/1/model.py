"""sum-model for Triton's Python backend: the row sums of `input`.

The same computation as bench/python/bench_models.py's SumModel: FP32
[rows, n] in, FP32 [rows, 1] out, so that the bench compares servers, not
models.
"""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            rows = x.shape[0] if x.ndim > 0 else 1
            sums = x.reshape(rows, -1).sum(axis=1, keepdims=True).astype(np.float32)
            out = pb_utils.Tensor("output", sums)
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
