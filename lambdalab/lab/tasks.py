"""Celery tasks: thin, they take ids and call a service. And the worker's start and stop."""

from __future__ import annotations

from celery import shared_task
from celery.signals import celeryd_after_setup, worker_ready, worker_shutting_down

from . import placement, services, tuning, worker


@shared_task(name="lab.invoke", ignore_result=True)
def invoke(call: dict, event: str):
    """``call``: the function, revision, batch, mode, request ids and where placement put them."""
    services.invocations_run(call=call, event=event)


@shared_task(name="lab.tune", ignore_result=True)
def tune(tune_id: str, event: str):
    """A power tuning: the handler at each memory size in turn, on this worker."""
    tuning.tuning_run(tune_id=tune_id, event=event)


@shared_task(name="lab.control_environment", ignore_result=True)
def control_environment(environment_id: str, action: str, seconds: float):
    services.environment_control_here(environment_id=environment_id, action=action, seconds=seconds)


@shared_task(name="lab.inspect_environment", ignore_result=True)
def inspect_environment(environment_id: str, reply_to: str):
    services.environment_inspect_here(environment_id=environment_id, reply_to=reply_to)


@shared_task(name="lab.shutdown_environments", ignore_result=True)
def shutdown_environments(function_id: str):
    services.environments_shutdown_here(function_id=function_id)


@shared_task(name="lab.provision", ignore_result=True)
def provision(function_id: str):
    services.provisioned_apply_here(function_id=function_id)


@celeryd_after_setup.connect
def _listen_on_own_queue(sender, instance, **kwargs):
    """Each worker also consumes a queue of its own: warm calls placed on its environments."""
    instance.app.amqp.queues.select_add(placement.worker_queue(sender))


@worker_ready.connect
def _start(sender, **kwargs):
    worker.start(sender.hostname)


@worker_shutting_down.connect
def _stop(**kwargs):
    worker.stop()
