"""mirage-env: a Xen dom0 for unikernel development, from one command, proven by checks."""

__version__ = "0.1.0"
