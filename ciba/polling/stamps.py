"""Forgetting a client everywhere once it changed: its version stamp and verified credentials.

Connected to the application model's signals by ``ciba.apps``. Changes that bypass model
signals (``QuerySet.update()``, raw SQL) are picked up by the client row cache's maximum age.
"""

from __future__ import annotations

from typing import Any

from django.db import router, transaction
from django.db.models.signals import post_delete, post_save, pre_save

from . import poll_state


def connect(application_model: Any) -> None:
    """Keep the shared poll state in step with saves and deletes of ``application_model``."""
    pre_save.connect(forget_client_before_save, sender=application_model, dispatch_uid="ciba.poll_state.pre")
    post_save.connect(forget_client, sender=application_model, dispatch_uid="ciba.poll_state.save")
    post_delete.connect(forget_client, sender=application_model, dispatch_uid="ciba.poll_state.delete")


def forget_client_before_save(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """A client id can be edited in the admin: forget what was verified under the old one."""
    store = poll_state()
    if store.shared and instance.pk is not None and not raw:
        stored = type(instance)._default_manager.filter(pk=instance.pk)
        old = stored.values_list("client_id", flat=True).first()
        if old and old != instance.client_id:
            transaction.on_commit(lambda: store.forget_client(old), using=router.db_for_write(sender))


def forget_client(sender: Any, instance: Any, **kwargs: Any) -> None:
    """After the commit: forgetting earlier would let a concurrent request re-read (and cache)
    the old row after the stamp changed."""
    store = poll_state()
    if store.shared:
        client_id = instance.client_id
        transaction.on_commit(lambda: store.forget_client(client_id), using=router.db_for_write(sender))
