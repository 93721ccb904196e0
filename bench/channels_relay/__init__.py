"""The relay benchmark's Django Channels relay: a minimal consumer with the real relay's per-frame work.

Not the relay (that lives in django_rt_sessions): the smallest Channels application that does, for every
frame, what the relay is meant to do (frames.py: recognise an append, count its audio, forward it), with
the relay's bookkeeping beside it (consumer.py: a session row, counters saved every 5 s by one shared
task, idle and limit checks by one shared ticker), so that bench/relay.py can measure what Channels and
an ASGI server cost per session against a bare forwarder. Knobs (environment variables, read at start,
listed in consumer.py) switch single pieces to their alternatives for the per-piece measurements.
"""
