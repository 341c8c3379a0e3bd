"""Xiangyin (乡音): a home voice assistant around the local speech-to-speech model Step-Audio 2 mini."""

__version__ = "0.1.0"
__all__ = ["__version__"]
