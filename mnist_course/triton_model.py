"""Triton python-backend model: the course's network over whole batches of raw 28x28 images.

`mnist_course.triton_repo.write_repository` copies this file into each version folder as model.py.
The folder holds model.pt2 (a torch.export program, the contract inside) or model.pt (a state_dict
for `Net`, run through the contract here).

Written by hand, not exported from a notebook: it is a file the server runs, shown and tested in
nbs/08_triton_model_repository.ipynb."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

import mnist_course.model as contract  # the serving contract: the server's image has the package

try:
    import triton_python_backend_utils as pb_utils  # exists inside Triton's python backend only
except ImportError:
    pb_utils = None

INPUT, OUTPUT = "INPUT__0", "OUTPUT__0"  # tensor names every course model uses

class TritonPythonModel:
    "What the python backend runs: load one version's model file, answer batches of requests."
    pb = pb_utils  # the backend's utilities; tests set a stand-in

    def initialize(self, args: dict):
        "Load the version's model file (an exported program or a state_dict) and set torch's threads."
        config = json.loads(args["model_config"])
        threads = config.get("parameters", {}).get("torch_threads", {}).get("string_value")
        if threads:
            torch.set_num_threads(int(threads))
        here = Path(args["model_repository"]) / args["model_version"]
        if (here / "model.pt2").exists():
            program = torch.export.load(str(here / "model.pt2")).module()
            self.predict, self.format = program, "torch.export program"
        else:
            net = contract.load_model(here / "model.pt")
            self.predict, self.format = (lambda x: contract.probabilities(net, x)), "state_dict + mnist_course.model.Net"
        self.pb.Logger.log_info(f"{args['model_name']} version {args['model_version']}: {self.format}, "
                                f"torch {torch.__version__} in {sys.prefix}, {torch.get_num_threads()} threads")

    def execute(self, requests: list) -> list:
        "One response per request, in order: probabilities, or INVALID_ARG for pixels that break the contract."
        responses, good, arrays = [None] * len(requests), [], []
        for i, request in enumerate(requests):
            x = self.pb.get_input_tensor_by_name(request, INPUT).as_numpy()
            why = contract.pixel_problem(torch.from_numpy(x))
            if why:
                error = self.pb.TritonError(why, self.pb.TritonError.INVALID_ARG)
                responses[i] = self.pb.InferenceResponse(output_tensors=[], error=error)
            else:
                good.append(i)
                arrays.append(x)
        if arrays:  # one forward pass over every valid request the scheduler merged into this call
            with torch.inference_mode():
                out = self.predict(torch.from_numpy(np.concatenate(arrays))).numpy()
            start = 0
            for i, x in zip(good, arrays):
                rows, start = out[start:start + len(x)], start + len(x)
                responses[i] = self.pb.InferenceResponse(output_tensors=[self.pb.Tensor(OUTPUT, rows)])
        return responses
