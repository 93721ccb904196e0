"""django-rt-sessions: broker short-lived OpenAI Realtime transcription tokens to a site's users."""

__version__ = "0.1.0"
