"""The version of qw, apart from the package front so that any module may import it."""

__version__ = "1.0.0.dev0"
