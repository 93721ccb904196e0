"""The relay: sessions the site controls (docs/relay.md).

A relay preset hands the browser a single-use relay ticket; the browser (or any OpenAI realtime client)
opens this site's WebSocket with it, and the site opens the upstream session with its own key, forwards
what the preset allows, meters the audio and ends the session at its limits or when staff end it.

`consumer.py` is the ASGI WebSocket (Django Channels: the `relay` extra) and `routing.py` its URL patterns;
`rules.py` decides what a client frame may do, `upstream.py` opens the upstream socket for each upstream
shape, `metering.py` keeps the counters and the clocks of a process's sessions, `sessions.py` the rows
(opening with the concurrency and minutes checks, closing, the sweep), `control.py` ends a session from
any host, `origins.py` the Origin check. Only `consumer.py`, `routing.py` and `metering.py` import
Channels: the issuing service, the admin and the checks import the rest on sites without the extra.
"""
