"""The hand-written peer of the load benchmark: the token view a site owner would write instead of the app.

A Django project with the example project's middleware, database, cache and sessions (settings.py reads
bench/load_settings.py) and one view (views.py): log-in required, one upstream POST with a pooled
`requests.Session`, the upstream's JSON returned. No preset, no rate limit, no audit row.
"""
