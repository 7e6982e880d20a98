"""The ``erpose`` command line: one module per verb, each with ``add_arguments`` and ``run``."""
