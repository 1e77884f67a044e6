import qw


@qw.task
def notify(who):
    return f"hello {who}"
