"""Exercise checkers: each chapter's ``bertedu.exercises.chNN`` module.

A chapter ends with exercises: a stub function for you to fill in, and a checker
``check_<name>(your_function)`` that runs it against the reference on several cases.
The checker prints a short success line, or raises ``AssertionError`` with a message
that says which case, which shape or which value is off, and often a hint.

Solutions are hidden: ``bertedu.exercises.chNN.solution("name")`` prints one.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import torch


class ExerciseError(AssertionError):
    """A checker's verdict: the message says what is wrong and how to look for it."""


def fail(message: str) -> None:
    raise ExerciseError(message)


def not_implemented(name: str) -> None:
    print(f"`{name}` is not implemented yet: replace `raise NotImplementedError` with your code and run the check again.")


def passed(name: str, n_cases: int) -> None:
    print(f"✓ {name}: {n_cases} of {n_cases} {'check' if n_cases == 1 else 'checks'} passed.")


def checker(name: str, n_cases: int) -> Callable[[Callable[[Callable], None]], Callable[[Callable], None]]:
    """Turn a checker body into a checker: "not implemented yet", a failure, or "passed".

    The body runs the learner's function on every case and calls ``fail`` on the first
    wrong one; a ``NotImplementedError`` from the learner's stub becomes a friendly note::

        @checker("split_heads", n_cases=2)
        def check_split_heads(function): ...
    """

    def wrap(body: Callable[[Callable], None]) -> Callable[[Callable], None]:
        @functools.wraps(body)
        def check(function: Callable) -> None:
            try:
                body(function)
            except NotImplementedError:
                return not_implemented(name)
            passed(name, n_cases)

        return check

    return wrap


def call_learner(function: Callable, description: str, *args: Any) -> Any:
    """Run the learner's function; if it crashes, say so and on which input.

    ``NotImplementedError`` passes through: the checker turns it into a "not yet" note.
    Runs under ``torch.no_grad()``: checkers compare values, never gradients.
    """
    try:
        with torch.no_grad():
            return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # the learner's bug
        fail(f"Your function raised {type(error).__name__}: {error}\n  on {description}.")


def compare_tensors(got: Any, expected: torch.Tensor, what: str, atol: float = 1e-5) -> None:
    """Fail with the shape or the largest difference when ``got`` is not ``expected``."""
    if not isinstance(got, torch.Tensor):
        fail(f"{what}: expected a tensor of shape {tuple(expected.shape)}, got {type(got).__name__}.")
    if tuple(got.shape) != tuple(expected.shape):
        fail(f"{what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    difference = (got.detach().double() - expected.detach().double()).abs()
    if not torch.isfinite(difference).all():
        fail(f"{what}: contains NaN or inf where the reference has finite values.")
    if difference.max() > atol:
        index = tuple(int(i) for i in torch.nonzero(difference == difference.max())[0])
        fail(
            f"{what}: the shape is right but the values differ; the largest difference is "
            f"{difference.max():.3g} at index {index} (yours {got[index].item():.5g}, "
            f"expected {expected[index].item():.5g})."
        )


def show_failure(check: Callable[[Callable], None], function: Callable) -> None:
    """Run a checker on a (wrong) function and print its message instead of raising."""
    try:
        check(function)
    except AssertionError as error:
        print(f"The checker says:\n{error}")
    else:
        print("The checker found nothing wrong.")


def print_solution(solutions: dict[str, Callable], name: str) -> None:
    """Print the source of a reference solution."""
    if name not in solutions:
        raise ValueError(f"No solution called {name!r}; there are: {', '.join(solutions)}.")
    print(inspect.getsource(solutions[name]))
