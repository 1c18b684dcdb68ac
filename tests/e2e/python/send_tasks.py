"""Sends one of each task of celery_app and prints their ids as JSON, for tests/sluice_celery.rs."""

import json

from celery_app import add, fail, flaky

ids = {"add": add.delay(2, 3).id, "fail": fail.delay().id, "flaky": flaky.delay().id}
print(json.dumps(ids), flush=True)
