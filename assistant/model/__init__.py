"""The brain: speech model engines behind the ``SpeechModel`` port."""
