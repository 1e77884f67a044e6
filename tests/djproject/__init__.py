"""A minimal Django project for tests/test_django.py: two apps, one model, a view, file-based SQLite."""
