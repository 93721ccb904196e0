"""Settings of the cost ladder (bench/ladder.py): the load benchmark's, with the ladder's views added."""

from bench.load_settings import *  # noqa: F403

ROOT_URLCONF = "bench.ladder_urls"
