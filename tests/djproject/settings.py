"""Settings of the test project; the test sets QW_TEST_REDIS_URL and QW_TEST_DB (a temporary file)."""

import os

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "djproject.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "djproject.shop",
    "djproject.mail",
    "qw.contrib.django",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("QW_TEST_DB", ":memory:")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
QW = {
    "URL": os.environ.get("QW_TEST_REDIS_URL", "redis://127.0.0.1:1/0"),
    "NAMESPACE": os.environ.get("QW_TEST_NAMESPACE", ""),
    "COMMIT_MODE": "on_commit",
    "IMMEDIATE": os.environ.get("QW_TEST_IMMEDIATE") == "1",
    "TASK_MODULES": ["tasks", "qw_workers"],
}
if os.environ.get("QW_TEST_BAD_SETTING"):
    QW["COMMIT_MODE"] = "whenever"
if os.environ.get("QW_TEST_BROKEN_APP"):
    INSTALLED_APPS.insert(0, "djproject.broken")
