"""SGD and Adam for parameters on the CPU, step for step the arithmetic of ``torch.optim``'s
single-tensor implementations (which torch uses on the CPU), without ``torch.optim``: its first
use imports ``torch._dynamo``, 1.1 s of every process's start (measured on the 2-core machine).
Parameters on other devices, and L-BFGS, use ``torch.optim`` itself.

Only what the project uses is supported: SGD with momentum (no dampening, no Nesterov) and L2
weight decay; Adam with L2 weight decay (no AMSGrad). ``param_groups[0]["lr"]`` may be changed
between steps, as schedules do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class _Plain:
    def __init__(self, params: Iterable[torch.Tensor], lr: float,
                 weight_decay: float = 0.0) -> None:
        self.param_groups: list[dict[str, Any]] = [
            {"params": list(params), "lr": lr, "weight_decay": weight_decay}]
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.param_groups[0]["params"]:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        with torch.no_grad():
            for param in group["params"]:
                if param.grad is not None:
                    grad = param.grad
                    if group["weight_decay"] != 0:
                        grad = grad.add(param, alpha=group["weight_decay"])
                    self._update(param, grad, self.state.setdefault(param, {}), group["lr"])
        return loss

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                lr: float) -> None:
        raise NotImplementedError


class PlainSGD(_Plain):
    """``torch.optim.SGD(params, lr, momentum, weight_decay)`` on the CPU."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                lr: float) -> None:
        if self.momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.detach().clone()
            else:
                buffer.mul_(self.momentum).add_(grad)
            grad = buffer
        param.add_(grad, alpha=-lr)


class PlainAdam(_Plain):
    """``torch.optim.Adam(params, lr, weight_decay=weight_decay)`` on the CPU."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any],
                lr: float) -> None:
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(param),
                         exp_avg_sq=torch.zeros_like(param))
        beta1, beta2 = self.betas
        state["step"] += 1
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = float(state["step"])
        step_size = lr / (1 - beta1**step)
        denominator = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
        param.addcdiv_(state["exp_avg"], denominator, value=-step_size)


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                   weight_decay: float = 0.0) -> Any:
    """The optimizer ``name`` (sgd, adam, lbfgs) over ``params``: the plain ones above for
    parameters on the CPU, ``torch.optim``'s elsewhere."""
    params = list(params)
    on_cpu = all(param.device.type == "cpu" for param in params)
    if name == "sgd":
        return (PlainSGD(params, lr, momentum, weight_decay) if on_cpu
                else torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay))
    if name == "adam":
        return (PlainAdam(params, lr, weight_decay) if on_cpu
                else torch.optim.Adam(params, lr=lr, weight_decay=weight_decay))
    if name == "lbfgs":
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, history_size=50,
                                 line_search_fn="strong_wolfe")
    raise ValueError(f"unknown optimizer {name!r}")
