"""The example project's one page: pick a preset, get a transcription session, watch it expire."""
