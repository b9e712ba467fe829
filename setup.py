"""Packaging for mnist-course, read from nbdev's settings.ini (no pkg_resources needed)."""
from configparser import ConfigParser
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
cfg = ConfigParser(delimiters=["="])
cfg.read(here / "settings.ini", encoding="utf-8")
c = cfg["DEFAULT"]

def deps(key):
    "The whitespace-separated requirement list stored under `key`."
    return c.get(key, "").split()

course, dev = deps("course_requirements"), deps("dev_requirements")
readme = here / "README.md"

setup(
    name=c["lib_name"],
    version=c["version"],
    description=c["description"],
    long_description=readme.read_text(encoding="utf-8") if readme.exists() else "",
    long_description_content_type="text/markdown",
    author=c["author"],
    license="Apache-2.0",
    python_requires=">=" + c["min_python"],
    packages=find_packages(include=["mnist_course", "mnist_course.*"]),
    include_package_data=True,
    package_data={"mnist_course": ["assets/*"]},
    install_requires=deps("requirements"),
    extras_require={"course": course, "dev": course + dev},
    entry_points={
        "console_scripts": c["console_scripts"].split(),
        "nbdev": [f"{c['lib_path']}={c['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)
