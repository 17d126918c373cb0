"""Build the optional C accelerator of dfagent.wire (all other metadata is in pyproject.toml).

`optional=True`: on a machine without a C compiler or Python headers the build prints a
warning and the package installs without it; dfagent.wire then uses its pure-Python decoder.
"""

from glob import glob

from setuptools import Extension, setup

setup(
    # switch profiles live at the top of the repository; installed copies go here
    # (dfagent.profiles searches sys.prefix/share/dfagent/switch_profiles)
    data_files=[("share/dfagent/switch_profiles", sorted(glob("switch_profiles/*.yaml")))],
    ext_modules=[
        Extension(
            "dfagent.wire._fastsyn",
            sources=["dfagent/wire/_fastsyn.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
