"""The ``deepbn`` command line."""
