"""WSGI entry point of the hand-written peer.

gunicorn -c example_project/gunicorn.conf.py bench.handwritten.wsgi
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.handwritten.settings")

application = get_wsgi_application()
