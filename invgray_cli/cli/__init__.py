"""The ``invgray`` command line: a thin shell over the codec (entry point ``invgray_cli.cli.app:main``)."""
