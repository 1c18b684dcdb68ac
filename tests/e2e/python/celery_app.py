"""A Celery app instrumented with sluice's SDK, for tests/sluice_celery.rs.

The broker is kombu's filesystem transport in the directory $BROKER_DIR (the test creates it, so no
broker service is needed); sluice.init() reads SLUICE_API_KEY, SLUICE_CONNECTION_ID and
SLUICE_BASE_URL, which point it at Herald. Three tasks: one succeeds, one fails, one retries once
and then succeeds.
"""

import os

import sluice
from celery import Celery

broker_dir = os.environ["BROKER_DIR"]
app = Celery("celery_app", broker="filesystem://")
app.conf.broker_transport_options = {
    "data_folder_in": os.path.join(broker_dir, "queue"),
    "data_folder_out": os.path.join(broker_dir, "queue"),
    "processed_folder": os.path.join(broker_dir, "processed"),
    "control_folder": os.path.join(broker_dir, "control"),
    "store_processed": False,
}
app.conf.broker_connection_retry_on_startup = True

sluice.init()


@app.task
def add(x, y):
    return x + y


@app.task
def fail():
    raise ValueError("boom")


@app.task(bind=True, max_retries=3)
def flaky(self):
    if self.request.retries < 1:
        raise self.retry(countdown=0.2)
    return "ok"
