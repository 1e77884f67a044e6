"""A module that declares no task: a plain function target, as today."""


def handle(job_id, data):
    return job_id, data
