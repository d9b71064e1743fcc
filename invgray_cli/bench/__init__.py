"""Stage bench: encode and decode speed and peak memory, beside the paper's Table 3.

Times the codec's array path as a user runs it (uint8 in, tiled, uint8 out) on synthetic
images, one or ``--batch N`` per call. With ``--paper`` the random-weight rebuild of the paper's
network (``models/paper.py``) is timed in the same run, whole image at once as the paper's
Table 3, and the speed ratio is given.

- ``measure``: sizes, devices, timing and peak memory of one call;
- ``runs``: what is timed, and the report (the ``--json`` document);
- ``table``: the table on stderr.

The command, ``invgray bench``, is ``cli/bench.py``.
"""
from invgray_cli.bench.measure import measure, parse_sizes, synthetic_photo

__all__ = ["measure", "parse_sizes", "synthetic_photo"]
