"""The relay benchmark's configuration "ours": the app's real relay (django_rt_sessions.relay) under uvicorn,
with its ticket check, forwarding rules, metering and clock, against the counting sink."""
