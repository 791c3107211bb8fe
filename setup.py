"""Builds the native extension only; all metadata lives in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(f"fastreg.{name}", [f"fastreg/{name}.pyx"], extra_compile_args=["-O3", "-funroll-loops"])
            for name in ("_hash", "_files", "_index")
        ],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
