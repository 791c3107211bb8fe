"""Builds the native extension only; all metadata lives in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

#: -Wall for our code; the two Cython's generated C always trips (helpers it emits and does not
#: use, a cast in its fast call path) are named and left out, so a warning that shows is ours.
WARNINGS = ["-Wall", "-Wno-unused-function", "-Wno-unused-variable"]

setup(
    ext_modules=cythonize(
        [
            Extension(
                f"fastreg.{name}", [f"fastreg/{name}.pyx"], extra_compile_args=["-O3", "-funroll-loops", *WARNINGS]
            )
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
