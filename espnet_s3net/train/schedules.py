"""Schedules that advance once per optimizer update: the ``count_update()`` protocol.

A module with a schedule (the quantizer's Gumbel temperature, the frontend's
``freeze_transformer_steps``) defines ``count_update(self) -> None``, which advances its
counter by one update; forwards never advance it. Whoever steps an optimizer calls
:func:`count_update` on the model after each step that happened (a skipped step does not
count): the trainer through :func:`update_counter_hook`, LTH's training directly.
"""

import torch


def _scheduled(model: torch.nn.Module):
    return [m for m in model.modules() if callable(getattr(m, "count_update", None))]


def count_update(model: torch.nn.Module) -> None:
    """Advance every schedule of ``model`` by one optimizer update."""
    for module in _scheduled(model):
        module.count_update()


def update_counter_hook(model: torch.nn.Module):
    """An optimizer step post-hook calling :func:`count_update` on ``model``."""
    modules = _scheduled(model)

    def hook(optimizer, args, kwargs) -> None:
        for module in modules:
            module.count_update()

    return hook
