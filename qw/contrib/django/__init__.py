"""qw for Django projects: ``INSTALLED_APPS += ["qw.contrib.django"]`` and a ``QW`` settings dict.

- :mod:`.settings` reads and checks ``settings.QW``;
- :mod:`.apps` discovers each app's task modules and sets the default client;
- :mod:`.client` queues ``.delay()`` when the surrounding transaction commits;
- :mod:`.connections` closes database connections around jobs and after the fork;
- ``management/commands``: ``qw_manager``, ``qw_info`` and ``qw``.

Needs Django (``pip install 'qw[django]'``).
"""
