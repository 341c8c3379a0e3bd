"""The brain: speech model backends behind the ``SpeechModel`` port."""
