"""Build the optional C accelerator of dfagent.wire (all other metadata is in pyproject.toml).

`optional=True`: on a machine without a C compiler or Python headers the build prints a
warning and the package installs without it; dfagent.wire then uses its pure-Python decoder.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dfagent.wire._fastsyn",
            sources=["dfagent/wire/_fastsyn.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
