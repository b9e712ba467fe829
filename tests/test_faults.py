"""Both servers under a short concurrent load while the process that runs the model is killed (issue 23): no request
hangs past its client's timeout, every answer that comes back is the one the healthy server gave, requests succeed again within 30 s of the kill
(TorchServe restarts its worker itself; the course's `Watch` reloads Triton's model, whose dead python stubs its own
health endpoints never report), and `health` says the model answers at the end. Each test prints how many requests
failed, with which statuses, and the recovery time."""
import collections
import json
import threading
import time

import pytest

from mnist_course.containers import kill_processes, stop_container
from mnist_course.servers import Watch, answers
from mnist_course.torchserve import TorchServe
from mnist_course.train import load_mnist
from mnist_course.triton import Triton

CLIENTS = 6  # threads sending one image per request, each with its own client
BEFORE_KILL = 3.0  # seconds of load before the kill
AFTER_RECOVERY = 2.0  # seconds of load once requests succeed again
RECOVERY_LIMIT = 30.0  # seconds from the kill within which requests must succeed again
# what runs the model, as its command line says: TorchServe's Python worker, Triton's python-backend stubs
MODEL_PROCESS = {"torchserve": "model_service_worker", "triton": "triton_python_backend_stub"}
TIMEOUT = {"torchserve": 30, "triton": 60}  # the course clients' own request timeouts (seconds)


def status_of(e: Exception) -> str:
    "An HTTP status where the error carries one (TorchServe's 507, Triton's 500), else the error's type."
    status = getattr(e, "status", None)
    status = status() if callable(status) else status
    return str(status) if status else type(e).__name__


@pytest.mark.parametrize("kind", ["torchserve", "triton"])
def test_model_process_killed_under_load(kind, tmp_path):
    cls = {"torchserve": TorchServe, "triton": Triton}[kind]
    images, _ = load_mnist("test")
    pixels = images[:64].numpy()
    name = f"mnist-course-faults-{kind}"
    log, stop, lock = [], threading.Event(), threading.Lock()  # (seconds since start, outcome, seconds taken)

    with cls.running(name=name, owner="test-faults") as server, Watch(server, interval=1.0) as watch:
        truth = server.predict(pixels).argmax(1).tolist()  # the healthy server's answers (a few differ from the labels)
        t0 = time.monotonic()

        def client(k: int):
            i = k
            while not stop.is_set():
                started = time.monotonic()
                try:
                    p = server.predict(pixels[i % 64][None])
                    outcome = "right" if int(p[0].argmax()) == truth[i % 64] else f"wrong ({int(p[0].argmax())})"
                except Exception as e:  # counted; the next request follows a moment later, as a client's retry would
                    outcome = status_of(e)
                    time.sleep(0.1)
                with lock:
                    log.append((started - t0, outcome, time.monotonic() - started))
                i += CLIENTS

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(BEFORE_KILL)
        killed = kill_processes(server.container, MODEL_PROCESS[kind])
        t_kill = time.monotonic() - t0
        recovered_at = None
        while time.monotonic() - t0 < t_kill + RECOVERY_LIMIT + AFTER_RECOVERY:
            time.sleep(0.2)
            with lock:
                later = [at for at, outcome, _ in log if at > t_kill + 0.5 and outcome == "right"]
            if later and recovered_at is None:
                recovered_at = min(later)
            if recovered_at is not None and time.monotonic() - t0 > recovered_at + AFTER_RECOVERY:
                break
        stop.set()
        for t in threads:
            t.join(TIMEOUT[kind] + 5)
        hung = [t for t in threads if t.is_alive()]
        health = answers(server)
        events = list(watch.events)

    after = [o for at, o, _ in log if at >= t_kill]
    report = {"server": kind, "model_processes_killed": len(killed), "requests": len(log),
              "requests_after_kill": len(after), "failed": dict(collections.Counter(o for o in after if o != "right")),
              "recovery_s": round(recovered_at - t_kill, 2) if recovered_at is not None else None,
              "watch": events, "longest_request_s": round(max(d for _, _, d in log), 2)}
    print(json.dumps(report, indent=1))
    assert killed, f"no {MODEL_PROCESS[kind]} process was found in {name}"
    assert not hung, f"{len(hung)} client(s) still waiting {TIMEOUT[kind] + 5} s after the load stopped"
    assert report["longest_request_s"] <= TIMEOUT[kind] + 2, report
    assert not any(o.startswith("wrong") for _, o, _ in log), report  # an answer that comes back is right
    dropped = [o for o in report["failed"] if "Connection" in o or "Disconnected" in o]
    assert not dropped, report  # the server answered every request, with an error status at worst
    assert recovered_at is not None and recovered_at - t_kill <= RECOVERY_LIMIT, report
    assert health["infers"], health
    if kind == "triton":  # nothing in Triton brings dead stubs back: the watch's reload did
        assert any(e["recovery"] == "reloaded the model" and e["recovered"] for e in events), events
    assert stop_container(name) is False  # `running` stopped it already
