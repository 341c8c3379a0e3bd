"""token2wav: 25 Hz speech tokens → 24 kHz audio, weight-compatible with Step-Audio 2 mini."""
