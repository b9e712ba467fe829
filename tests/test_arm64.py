"""linux/arm64 under emulation (issue 20): the course's arm64 images build (cached like amd64's, by fingerprint), the
arm64 training image trains 20 batches and tests on 1,000 images, and the arm64 TorchServe and Triton containers answer
test digits with the amd64 servers' probabilities within 1e-4. Each prints its emulated times; the images' sizes are
printed by the build."""
import time

import numpy as np
import pytest

from mnist_course.engine import docker_client
from mnist_course.images import build_images, image_tag, require_emulation
from mnist_course.torchserve import TorchServe
from mnist_course.train import ensure_trained_model, load_mnist
from mnist_course.train_docker import train_in_docker
from mnist_course.triton import Triton

ARM64 = "linux/arm64"
IMAGES = ("train-cpu", "torchserve", "triton")  # and the bases they stand on: python, torch-cpu
TOLERANCE = 1e-4  # largest difference in any probability between the two processors' answers
DIGITS = 10  # the test set's first images


@pytest.fixture(scope="module")
def built():
    print(require_emulation(ARM64))  # how this host runs arm64 programs: natively, or qemu through binfmt_misc
    records = build_images(IMAGES, platform=ARM64, progress=False)
    for r in records:
        print(f"{r['tag']}: {r['size_bytes'] / 1e6:.0f} MB, {r['platform']}, "
              f"{'built in ' + str(r['seconds']) + ' s' if r['built'] else 'up to date'}")
    assert [r["platform"] for r in records] == [ARM64] * len(IMAGES)
    return records


def test_arm64_training_image_trains(built, tmp_path):
    r = train_in_docker("train-cpu", platform=ARM64, out_dir=str(tmp_path), epochs=1, max_batches=20,
                        max_test_images=1000, save_model=True, log=None)
    assert r["exit_code"] == 0 and r["image"] == image_tag("train-cpu", ARM64)
    epoch = r["epochs"][0]
    print(f"arm64 training: {r['seconds']} s in all, {epoch['seconds']} s for 20 batches and 1,000 test images, "
          f"accuracy {epoch['accuracy']:.3f}")
    assert (epoch["batches"], epoch["total"]) == (20, 1000)
    assert epoch["accuracy"] > 0.5  # 20 batches take a random net (0.1) most of the way
    assert (tmp_path / "mnist_cnn.pt").is_file()
    assert docker_client().images.get(r["image"]).attrs["Architecture"] == "arm64"


@pytest.mark.parametrize("kind", ["torchserve", "triton"])
def test_arm64_server_answers_as_amd64(built, kind):
    cls = {"torchserve": TorchServe, "triton": Triton}[kind]
    model = ensure_trained_model()
    images, labels = load_mnist("test")
    pixels = images[:DIGITS].numpy()
    answers, times = {}, {}
    for platform in (ARM64, "linux/amd64"):  # one after the other: they would take the same ports
        t0 = time.perf_counter()
        with cls.running(model, name=f"mnist-course-{platform.rsplit('/', 1)[1]}-{kind}", owner="test-arm64",
                         platform=platform, timeout=900) as server:
            started = time.perf_counter() - t0
            server.predict(pixels)  # the first request warms the model up
            t1 = time.perf_counter()
            answers[platform] = np.asarray(server.predict(pixels))
            times[platform] = (round(started, 1), round(time.perf_counter() - t1, 3))
            assert server.image == image_tag(cls.image_name, platform)
    diff = float(np.abs(answers[ARM64] - answers["linux/amd64"]).max())
    print(f"{kind}: start {times[ARM64][0]} s on arm64 (emulated) vs {times['linux/amd64'][0]} s on amd64; "
          f"{DIGITS} digits in {times[ARM64][1]} s vs {times['linux/amd64'][1]} s; largest probability difference {diff:.2e}")
    assert answers[ARM64].argmax(1).tolist() == answers["linux/amd64"].argmax(1).tolist()
    assert diff <= TOLERANCE
