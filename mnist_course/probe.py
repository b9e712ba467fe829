"""One known digit sent to a model server on the loopback, its answer checked: the liveness probe that infers, run in a
server's container as `python3 -m mnist_course.probe triton|torchserve --port P` (exit 0: it answered right).

Written by hand, not exported from a notebook, and on the standard library only: the course's server images run it
(lesson 12's Deployments, lesson 09 with `docker exec`), and it must start in a fraction of a second next to the model.
nbs/95_servers.ipynb shows and tests it."""
import base64
import json
import sys
import urllib.error
import urllib.request
import zlib

# the MNIST test set's image 0 (Yann LeCun and Corinna Cortes, CC BY-SA 3.0): a 7, 784 grey levels row by row
DIGIT_LABEL = 7
DIGIT = zlib.decompress(base64.b64decode(
    "eNpjYBguIGTn/Ok2Ktjl7v0Dgo/HoGCVCbKcc5FH0eLH/x4CVfx6+u9fD4ZmQSc+Z2dna9E3/7Jw2R3896IQDimxl/+DcWlr"
    "/PdOB4eU9c9/dri0tf7bzYpDivPsDytc2ur+bcMl5f37gyUOKeG7/5bhkGI+/e+2Mg45tX//fHFIyT/4V8yI02v/THBI2X7C"
    "LVf5799tDZxy54WIT0UAWodIFw=="))

def _post(url: str, body: dict, timeout: float):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())

def triton_answer(port: int, model: str = "mnist", timeout: float = 5.0) -> int:
    "The digit Triton's `model` on 127.0.0.1:`port` sees in `DIGIT` (KServe v2 JSON, FP32 [1, 1, 28, 28])."
    body = {"inputs": [{"name": "INPUT__0", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": list(DIGIT)}]}
    probs = _post(f"http://127.0.0.1:{port}/v2/models/{model}/infer", body, timeout)["outputs"][0]["data"]
    return max(range(len(probs)), key=probs.__getitem__)

def torchserve_answer(port: int, model: str = "mnist", timeout: float = 5.0) -> int:
    "The digit TorchServe's `model` on 127.0.0.1:`port` (no token: the pod's loopback) sees in `DIGIT` (JSON pixels)."
    rows = [list(DIGIT[r * 28:(r + 1) * 28]) for r in range(28)]
    return int(_post(f"http://127.0.0.1:{port}/predictions/{model}", {"data": [rows]}, timeout)[0]["prediction"])

def main(argv: list[str] | None = None) -> int:
    "`python3 -m mnist_course.probe SERVER --port P`: 0 when the model answers the known digit right, else 1 and why."
    import argparse
    p = argparse.ArgumentParser(prog="python3 -m mnist_course.probe", description=main.__doc__)
    p.add_argument("server", choices=("triton", "torchserve"))
    p.add_argument("--port", type=int, required=True, help="the server's inference port on 127.0.0.1")
    p.add_argument("--model", default="mnist", help="the model's name")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    a = p.parse_args(argv)
    where = f"{a.server} on 127.0.0.1:{a.port}"
    try:
        got = (triton_answer if a.server == "triton" else torchserve_answer)(a.port, a.model, a.timeout)
    except urllib.error.HTTPError as e:  # the server answered, the model did not
        print(f"{where}: HTTP {e.code}: {e.read().decode(errors='replace')[:300]}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, IndexError) as e:  # refused, timed out, or an answer of another shape
        print(f"{where}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if got != DIGIT_LABEL:
        print(f"{where}: answered {got} for a {DIGIT_LABEL}", file=sys.stderr)
        return 1
    print(f"{where}: answered {got}, right")
    return 0

if __name__ == "__main__":
    sys.exit(main())
