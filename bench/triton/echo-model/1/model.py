"""echo-model for Triton's Python backend: returns `input` as `output`.

The same as bench/python/bench_models.py's EchoModel.
"""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "input").as_numpy()
            out = pb_utils.Tensor("output", x)
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses
