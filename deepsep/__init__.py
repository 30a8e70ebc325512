"""deepsep: neural source separation for speech (voice/noise) and music (vocals/drums/bass/other)."""

__version__ = "0.1.0"
