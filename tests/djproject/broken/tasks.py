import qw

undefined_name  # noqa: B018, F821 - the import error autodiscovery must name


@qw.task(name="broken.never")
def never():
    pass
