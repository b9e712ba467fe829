"""The `mnist-course` command: a thin dispatcher onto the functions the notebooks export.

Each subcommand lives in the module of the lesson that teaches it and has the signature
`fn(argv: list[str]) -> int`; this file only routes. Results are JSON lines on stdout,
messages for people on stderr.
"""
from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
COMMANDS = {
    "doctor": ("mnist_course.environment", "doctor_cli", "check the engine, images, data, torch and disk"),
    "setup": ("mnist_course.environment", "setup_cli", "install/start what is missing (engine, data, images)"),
    "data": ("mnist_course.environment", "data_cli", "fetch and verify the MNIST idx files"),
    "images": ("mnist_course.environment", "images_cli", "build the course's images and print their sizes"),
    "clean": ("mnist_course.containers", "clean_cli", "stop and remove the course's containers (all, or --owner's)"),
    "train": ("mnist_course.train_docker", "train_cli", "train on the host, or in the training image with --in-docker"),
    "bench": ("mnist_course.bench", "bench_cli", "parity and load: in-process, TorchServe, Triton side by side"),
}
# serve/predict/stop take a server name first and go to that server's module.
SERVERS: dict[str, str] = {"torchserve": "mnist_course.torchserve", "triton": "mnist_course.triton"}
SERVER_VERBS = {"serve": "start a server and wait until the model is ready",
                "predict": "send images to a running server",
                "stop": "stop a server (idempotent)"}


def usage() -> str:
    lines = ["usage: mnist-course COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    if SERVERS:
        names = "|".join(SERVERS)
        lines += [f"  {verb:10} {{{names}}} ...  {help_}" for verb, help_ in SERVER_VERBS.items()]
    lines += ["", "Run `mnist-course COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd in COMMANDS:
        mod, fn, _ = COMMANDS[cmd]
    elif cmd in SERVER_VERBS and SERVERS:
        if not rest or rest[0] not in SERVERS:
            print(f"mnist-course {cmd}: name a server: {' | '.join(SERVERS)}", file=sys.stderr)
            return 2
        mod, fn, rest = SERVERS[rest[0]], f"{cmd}_cli", rest[1:]
    else:
        print(f"mnist-course: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        return int(getattr(importlib.import_module(mod), fn)(rest) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
