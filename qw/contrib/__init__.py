"""Integrations of qw with frameworks: :mod:`qw.contrib.django`."""
