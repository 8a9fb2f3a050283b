"""The checks of the course notebooks' test cells (course/source): what a test cell calls to run
a student's function and compare its result with the kit's.

- :func:`attempt` runs the student's function. While it runs, the kit functions the exercise is
  about are *blocked* (``blocked=``: calling them fails the test, also through an alias or from
  inside another kit function), earlier pieces can be *fed* with the reference (``feed=``: the
  student's ``learned_labels`` calls the reference ``distance_bins``, so one mistake costs one
  test cell), and afterwards it checks that nothing of the grader was rebound or patched
  (a ``check_close = lambda *a, **k: None`` inside a solution, a kit function replaced).
- :func:`check_close`, :func:`check_number`, :func:`check_adjoint` compare; a failure is
  :class:`StudentCheckFailed` with a message that says what to do next.

Test cells import these names in the cell itself, so a solution cell that rebinds them in the
notebook changes nothing. This is a grader, not a sandbox: code written to defeat these checks
(reading the grader's internals) is for the instructor to see in the formgrader.
"""
from __future__ import annotations

import importlib
import math
import sys
import types
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch import Tensor

BLOCK_AUTOGRAD = ("torch.autograd.grad", "torch.autograd.backward")
"""Autograd's entry points (``Tensor.backward``, ``torch.autograd.functional`` and ``torch.func``
go through them): blocked where the exercise is to write a gradient or a transpose by hand."""


class StudentCheckFailed(AssertionError):
    """A test cell's check failed; the message tells the student what to look at."""


def fail(message: str) -> None:
    """Fail a test cell with ``message``."""
    raise StudentCheckFailed(message)


# ---------------------------------------------------------------------------------------------
# blocking kit functions while the student's code runs
# ---------------------------------------------------------------------------------------------

class _Guard:
    """Process-wide state of :func:`attempt`: the blocked functions (key -> (dotted name, an
    unblocked clone)), how deep we are inside fed reference pieces, what the student called."""

    def __init__(self) -> None:
        self.blocked: dict[int, tuple[str, Callable]] = {}
        self.inside_reference = 0
        self.violations: list[str] = []


_GUARD = _Guard()


def _kit_call(key: int, args: tuple, kwargs: dict) -> Any:
    """What a blocked function runs instead of its body (see :func:`_blocked_code`)."""
    name, clone = _GUARD.blocked[key]
    if _GUARD.inside_reference:
        return clone(*args, **kwargs)
    _GUARD.violations.append(name)
    raise StudentCheckFailed(f"your code calls `{name}`, which this exercise asks you to write "
                             f"yourself: remove that call and compute it with plain PyTorch.")


def _blocked_code(key: int, name: str) -> types.CodeType:
    src = (f"def blocked(*args, **kwargs):\n"
           f"    return __import__({__name__!r}, fromlist=['_kit_call'])._kit_call({key}, args, kwargs)\n")
    namespace: dict = {}
    exec(compile(src, f"<blocked {name}>", "exec"), namespace)
    return namespace["blocked"].__code__


def _resolve(dotted: str) -> list[tuple[str, types.FunctionType]]:
    """The plain Python functions a dotted name stands for: a function, every function of a
    class (its methods, static and class methods), or every function and class of a module."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        break
    else:
        raise ImportError(dotted)

    def functions(owner: Any, prefix: str) -> list[tuple[str, types.FunctionType]]:
        out = []
        for attr, value in vars(owner).items():
            value = getattr(value, "__func__", value)                  # staticmethod, classmethod
            if isinstance(value, types.FunctionType) and value.__closure__ is None:
                out.append((f"{prefix}.{attr}", value))
        return out

    if isinstance(obj, types.FunctionType):
        return [(dotted, obj)]
    if isinstance(obj, type):
        return functions(obj, dotted)
    if isinstance(obj, types.ModuleType):
        out = []
        for attr, value in vars(obj).items():
            if getattr(value, "__module__", None) != obj.__name__:
                continue
            if isinstance(value, types.FunctionType) and value.__closure__ is None:
                out.append((f"{dotted}.{attr}", value))
            elif isinstance(value, type):
                out += functions(value, f"{dotted}.{attr}")
        return out
    raise TypeError(f"cannot block {dotted}: not a function, class or module")


@contextmanager
def _blocking(names: Iterable[str]) -> Iterator[None]:
    """Swap the code of every function ``names`` stand for with a call to :func:`_kit_call`; all
    references to them (aliases, bound methods, calls from other kit code) see the swap."""
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    try:
        for dotted in names:
            for name, fn in _resolve(dotted):
                if any(fn is f for f, _ in swapped):
                    continue
                key = len(_GUARD.blocked)
                clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__)
                clone.__kwdefaults__ = fn.__kwdefaults__
                _GUARD.blocked[key] = (name, clone)
                swapped.append((fn, fn.__code__))
                fn.__code__ = _blocked_code(key, name)
        yield
    finally:
        for fn, code in swapped:
            fn.__code__ = code
        _GUARD.blocked.clear()


def reference(fn: Callable) -> Callable:
    """``fn`` as a piece fed to the student's code: it may use blocked kit functions."""
    def piece(*args: Any, **kwargs: Any) -> Any:
        _GUARD.inside_reference += 1
        try:
            return fn(*args, **kwargs)
        finally:
            _GUARD.inside_reference -= 1
    piece.__name__ = getattr(fn, "__name__", "reference")
    return piece


# ---------------------------------------------------------------------------------------------
# what the student's code must not change
# ---------------------------------------------------------------------------------------------

def _grader_object(value: Any) -> bool:
    if isinstance(value, types.ModuleType):
        return value.__name__.split(".")[0] == "gocor"
    return str(getattr(value, "__module__", "") or "").split(".")[0] == "gocor"


def _snapshot(namespace: Mapping[str, Any]) -> dict:
    """Everything of the kit a student could rebind: the notebook's names bound to kit objects,
    the attributes of every loaded ``gocor`` module and the code of their functions."""
    modules = {name: mod for name, mod in list(sys.modules.items())
               if name.split(".")[0] == "gocor" and mod is not None}
    attrs = {name: dict(vars(mod)) for name, mod in modules.items()}
    codes = {}
    for name, values in attrs.items():
        for attr, value in values.items():
            owners = [value] if isinstance(value, types.FunctionType) else \
                [v for v in vars(value).values() if isinstance(v, types.FunctionType)] \
                if isinstance(value, type) and getattr(value, "__module__", None) == name else []
            for fn in owners:
                codes[id(fn)] = (fn, fn.__code__, f"{name}.{attr}")
    return {"names": {k: v for k, v in namespace.items() if _grader_object(v)},
            "modules": modules, "attrs": attrs, "codes": codes}


def _restore(before: dict, namespace: dict) -> list[str]:
    """Put back whatever the student's code changed; return what it was."""
    changed = []
    for key, value in before["names"].items():
        if namespace.get(key) is not value:
            changed.append(f"`{key}`")
            namespace[key] = value
    for name, mod in before["modules"].items():
        now = vars(mod)
        for attr, value in before["attrs"][name].items():
            if now.get(attr) is not value:
                changed.append(f"`{name}.{attr}`")
                setattr(mod, attr, value)
    for fn, code, name in before["codes"].values():
        if fn.__code__ is not code:
            changed.append(f"the code of `{name}`")
            fn.__code__ = code
    return changed


# ---------------------------------------------------------------------------------------------
# running the student's function
# ---------------------------------------------------------------------------------------------

def attempt(fn: Callable[..., Any], *args: Any, blocked: Iterable[str] = (),
            feed: Mapping[str, Callable] | None = None, **kwargs: Any) -> Any:
    """Call the student's ``fn(*args, **kwargs)`` and return its result.

    ``blocked``: dotted names (functions, classes, modules) the call must not use. ``feed``:
    names of the notebook rebound, for this call only, to reference pieces (``{"distance_bins":
    gocor.objective.distance_bins}``), so the student's ``fn`` is checked on its own.
    A stub (``NotImplementedError``) becomes a failure that says so."""
    if not callable(fn):
        fail(f"expected a function, got {type(fn).__name__}: run the cell that defines it.")
    name = getattr(fn, "__name__", repr(fn))
    namespace = getattr(fn, "__globals__", {})
    before = _snapshot(namespace)
    saved = {k: namespace[k] for k in (feed or {}) if k in namespace}
    _GUARD.violations.clear()
    error: BaseException | None = None
    result = None
    try:
        for key, piece in (feed or {}).items():
            namespace[key] = reference(piece)
        with _blocking(blocked):
            result = fn(*args, **kwargs)
    except NotImplementedError:
        error = StudentCheckFailed(
            f"`{name}` is still the stub: replace `raise NotImplementedError()` in its cell with "
            f"your implementation, run that cell, then run this test cell again.")
    except BaseException as e:   # noqa: BLE001 (re-raised below, after the checks)
        error = e
    finally:
        for key in feed or {}:
            if key in saved:
                namespace[key] = saved[key]
            else:
                namespace.pop(key, None)
        changed = _restore(before, namespace)
        violations = sorted(set(_GUARD.violations))
        _GUARD.violations.clear()
    if violations:
        fail(f"`{name}` calls {', '.join(f'`{v}`' for v in violations)}, which this exercise asks "
             f"you to write yourself: compute it with plain PyTorch.")
    if changed:
        fail(f"`{name}` changed {', '.join(changed)} (the grader's or the kit's): a solution may "
             f"not rebind or patch them. They were put back.")
    if error is not None:
        raise error
    return result


# ---------------------------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------------------------

def _plain_tensor(name: str, got: Any, hint: str) -> Tensor:
    if isinstance(got, torch.nn.Parameter):
        got = got.data
    if type(got) is not Tensor:
        fail(f"{name}: expected a torch.Tensor, got {type(got).__name__}.{hint}")
    return got


def check_close(name: str, got: Any, expected: Tensor, tol: float = 1e-10, hint: str = "") -> None:
    """Fail unless ``got`` is a plain tensor of ``expected``'s shape within ``tol`` (max abs
    error, relative to max(1, max |expected|)). The message names the quantity, the shapes or
    the error and where it is largest, and ``hint``."""
    hint = f" Hint: {hint}" if hint else ""
    got = _plain_tensor(name, got, hint)
    if tuple(got.shape) != tuple(expected.shape):
        fail(f"{name}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}.{hint}")
    diff = (got.detach().to(expected.dtype) - expected.detach()).abs()
    if not torch.isfinite(diff).all():
        fail(f"{name}: contains NaN or inf.{hint}")
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    err = float(diff.max()) / scale if diff.numel() else 0.0
    if err > tol:
        where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        fail(f"{name}: relative error {err:.3g} > {tol:g}, largest at index {where} "
             f"(got {float(got.flatten()[diff.argmax()]):.6g}, expected "
             f"{float(expected.flatten()[diff.argmax()]):.6g}).{hint}")


def check_number(name: str, value: Any, low: float, high: float) -> float:
    """Fail unless ``value`` is a finite real number in [low, high]; returns it as a float."""
    if type(value) is Tensor and value.numel() == 1:
        value = value.item()
    if type(value) not in (int, float):
        fail(f"{name}: expected a number, got {type(value).__name__}.")
    if not math.isfinite(value) or not low <= value <= high:
        fail(f"{name} = {value!r} is not a finite number in [{low}, {high}]: check how you computed it.")
    return float(value)


def check_adjoint(name: str, forward: Callable[[Tensor], Tensor], transpose_out: Any,
                  x: Tensor, y: Tensor, tol: float = 1e-10) -> None:
    """Fail unless ``<forward(x), y> = <x, transpose_out>`` (``transpose_out`` is the student's
    Aᵀ y, shaped like ``x``) to ``tol`` relative to max(1, |<forward(x), y>|)."""
    out = _plain_tensor(name, transpose_out, "")
    if out.shape != x.shape:
        fail(f"{name}: expected a tensor of shape {tuple(x.shape)}, got {tuple(out.shape)}.")
    lhs, rhs = (forward(x) * y).sum(), (x * out).sum()
    err = float((lhs - rhs).abs()) / max(1.0, float(lhs.abs()))
    if not math.isfinite(err) or err > tol:
        fail(f"{name}: adjoint identity fails, <A x, y> = {float(lhs):.10g} but <x, Aᵀ y> = {float(rhs):.10g}. "
             f"Hint: every product f·w in A must appear in Aᵀ with the same score entry.")
