"""Imported at startup by every Python the local TaskManagers start (first on their PYTHONPATH):
arms flinkpulse.stack.udf_guard in process-mode UDF workers, does nothing anywhere else."""

import sys

if "pyflink.fn_execution.beam.beam_boot" in sys.orig_argv:
    from flinkpulse.stack import udf_guard

    udf_guard.install()
