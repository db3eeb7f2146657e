from celery import shared_task

from . import services


@shared_task(name="courses.run_attempt", ignore_result=True)
def run_attempt(attempt_id: int):
    services.attempt_execute(attempt_id=attempt_id)
