import qw


@qw.task(name="mail.welcome", queue="emails")
def welcome(user):
    return f"welcome, {user}"
