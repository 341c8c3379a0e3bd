"""Hardware adapters: PyAudio microphone and speaker, device listing, WAV file sources and sinks."""
