"""Build step beyond pyproject.toml: compile the clients' TF Serving protos.

`clients/_protos/*.proto` become one descriptor set (`tfserving.binpb`) inside
the wheel (or, for an editable install, beside the sources), so that the
installed gRPC client needs neither protoc nor TensorFlow. grpcio-tools is a
build requirement (pyproject.toml).
"""
import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _compiler():
    spec = importlib.util.spec_from_file_location("_protos_compile", HERE / "clients" / "_protos" / "_compile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithProtos(build_py):
    def run(self):
        super().run()
        compiler = _compiler()
        package_dir = HERE if self.editable_mode else Path(self.build_lib)
        compiler.compile_descriptor_set(package_dir / "clients" / "_protos" / compiler.DESCRIPTOR_SET)

    def get_outputs(self, include_bytecode=True):
        built = Path(self.build_lib) / "clients" / "_protos" / _compiler().DESCRIPTOR_SET
        return [*super().get_outputs(include_bytecode), str(built)]


setup(cmdclass={"build_py": BuildPyWithProtos})
