import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")
application = get_wsgi_application()

from rubricstudio.warm import warm  # noqa: E402 - needs the application's setup first

warm()
