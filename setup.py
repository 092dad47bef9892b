"""The one thing pyproject.toml cannot say: bpf/ (the XDP program's C sources, which stays at the top of
the repository) ships inside the package as `lb._bpf`, in wheels and editable installs alike, so that
lb.datapath.sources finds it through importlib.resources however lbxdp was installed."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["lb", "lb.*"]), "lb._bpf"],
    package_dir={"lb._bpf": "bpf"},
    package_data={"lb._bpf": ["*.c", "*.h", ".clang-format"]},
)
