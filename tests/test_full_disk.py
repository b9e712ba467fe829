"""A full disk loses nothing (issue 23, goal 5). A checkpoint, a TorchServe archive or a Triton repository that cannot
be written for want of space fails with one line naming the path, the space free and what to do; what was there
before stays whole, no temporary file is left beside it, and once there is space again the same call carries on.

Each test mounts a tmpfs of its own as the output folder (so the disk really is full, with the kernel's own ENOSPC)
and fills it with a filler file; the tmpfs is unmounted whatever happens. Mounting needs root: as anyone else the
tests skip, saying so. No engine is needed. The training runs are a few batches on one thread."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as the full disk needs root")

DISK_MB = 48  # room for two checkpoints (~15 MB each) or two Triton repositories, not for what the filler takes


@pytest.fixture
def disk(tmp_path):
    "A tmpfs of DISK_MB at tmp_path/disk, unmounted at teardown even when the test failed."
    d = tmp_path / "disk"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode:
            # busy: a file on it is still open (a failed test's traceback can hold one). Detached now, the tmpfs is
            # freed when that file closes; say so, as code that keeps a file open after a failure is a bug too.
            subprocess.run(["umount", "--lazy", str(d)], check=True)
            pytest.fail(f"{d} was busy at teardown (a file on it still open): unmounted lazily")


def fill(disk: Path, leave: int) -> Path:
    "A filler file that leaves about `leave` bytes free on `disk` (allocated, not sparse: tmpfs counts it)."
    filler = disk / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, shutil.disk_usage(disk).free - leave)
    assert abs(shutil.disk_usage(disk).free - leave) < 64 * 1024, shutil.disk_usage(disk)
    return filler


def digests(root: Path) -> dict[str, str]:
    "Every file under `root` (relative path -> sha256), a file or a folder."
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    "An untrained `Net` state_dict (serving needs none trained to be packed), off the small disk."
    from mnist_course.model import Net
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "mnist_cnn.pt"
    torch.save(Net().state_dict(), path)
    return path


def train_cli(capfd, out: Path, *more: str) -> tuple[int, list[str], list[str]]:
    "`mnist-train` in this process for a few batches into `out`: (exit status, stdout lines, stderr lines)."
    from mnist_course.train import main
    capfd.readouterr()
    code = main(["--max-batches", "4", "--checkpoint-every", "2", "--max-test-images", "100", "--num-threads", "1",
                 "--no-accel", "--out-dir", str(out), *more])
    o, e = capfd.readouterr()
    return code, o.splitlines(), e.splitlines()


def test_training_checkpoint(disk, capfd):
    from mnist_course.train import CHECKPOINT
    ckpt = disk / CHECKPOINT
    code, _, err = train_cli(capfd, disk, "--epochs", "1", "--quiet")
    assert code == 0, err
    before = ckpt.read_bytes()
    filler = fill(disk, leave=len(before) // 2)  # half a checkpoint: epoch 2's checkpoint at batch 2 cannot be written

    code, out, err = train_cli(capfd, disk, "--epochs", "2", "--resume", "--quiet")
    assert code == 1 and len(err) == 1, err  # one line, no traceback
    assert err[0].startswith(f"mnist-train: No space left on device: cannot write {ckpt} ("), err[0]
    assert "MB needed, " in err[0] and f" free in {disk}); the previous {CHECKPOINT} is untouched: free some space " \
           "there and run the same command again with --resume" in err[0], err[0]
    assert ckpt.read_bytes() == before  # the previous checkpoint, whole ...
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert (state["epoch"], state["batch"]) == (2, 0)  # ... and still the end of epoch 1
    assert sorted(os.listdir(disk)) == [CHECKPOINT, "filler"]  # no temporary file left

    filler.unlink()
    code, out, err = train_cli(capfd, disk, "--epochs", "2", "--resume")
    assert code == 0, err
    assert err[0] == f"resuming from {ckpt}: epoch 2, batch 0/4", err
    epoch = json.loads(out[0])
    assert (epoch["epoch"], epoch["batches"]) == (2, 4), epoch  # all of epoch 2, from the surviving checkpoint
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 3


def test_torchserve_archive(disk, weights):
    from mnist_course.core import DiskFull
    from mnist_course.torchserve import archive_model
    store = disk / "model-store"
    mar = archive_model(weights, store)
    before = mar.read_bytes()
    # room for the archiver's staging copy of the weights, and half the archive
    filler = fill(disk, leave=weights.stat().st_size + len(before) // 2)

    with pytest.raises(DiskFull) as failed:
        archive_model(weights, store, torch_threads=2)
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"No space left on device: cannot write {mar} ("), message
    assert message.endswith(f" free in {store}); the previous mnist.mar is untouched: free some space there and "
                            "archive again"), message
    assert mar.read_bytes() == before
    assert zipfile.ZipFile(mar).testzip() is None
    assert os.listdir(store) == ["mnist.mar"]  # no staging folder, no half archive

    filler.unlink()
    archive_model(weights, store, torch_threads=2)
    with zipfile.ZipFile(mar) as z:  # the new archive, whole
        assert z.testzip() is None and "torch_threads: 2" in z.read("model-config.yaml").decode()
    assert os.listdir(store) == ["mnist.mar"]


def test_triton_repository(disk, weights):
    from mnist_course.core import DiskFull
    from mnist_course.triton_repo import write_repository
    repo = disk / "repository"
    write_repository(weights, repo, libtorch_kind="KIND_CPU")
    before = digests(repo)
    sizes = {f: (repo / f).stat().st_size for f in before}
    # room for versions 1 and 2 of `mnist`, and half of the TorchScript file: the last file written fails
    filler = fill(disk, leave=sizes["mnist/1/model.pt"] + sizes["mnist/2/model.pt2"] + sizes["mnist_libtorch/1/model.pt"] // 2)

    with pytest.raises(DiskFull) as failed:
        write_repository(weights, repo, instances=1, libtorch_kind="KIND_CPU")
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"No space left on device: cannot write {repo} ("), message
    assert message.endswith(f" free in {disk}); the previous repository is untouched: free some space there and "
                            "write the repository again"), message
    assert digests(repo) == before
    assert sorted(os.listdir(disk)) == ["filler", "repository"]  # no .partial folder

    filler.unlink()
    write_repository(weights, repo, instances=1, libtorch_kind="KIND_CPU")
    assert digests(repo).keys() == before.keys() and "count: 1," in (repo / "mnist" / "config.pbtxt").read_text()
    assert sorted(os.listdir(disk)) == ["repository"]
