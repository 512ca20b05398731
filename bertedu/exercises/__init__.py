"""Exercise checkers: each chapter's ``bertedu.exercises.chNN`` module.

A chapter ends with exercises: a stub function for you to fill in, and a checker
``check_<name>(your_function)`` that runs it against the reference on several cases.
The checker prints a short success line, or raises ``AssertionError`` with a message
that says which case, which shape or which value is off, and often a hint.

Two kinds of exercise:

- *write a function*: a stub that raises ``NotImplementedError``; the checker compares it
  with the reference on several cases;
- *predict, then run*: a stub that returns your prediction (a number); the checker runs
  the experiment, prints both and says whether your prediction was close (``check_prediction``).

The reference solutions live in these modules (they are tested against the package in
``tests/test_exercises.py``), and ``bertedu.exercises.chNN.solution("name")`` prints one.
A teacher can make ``solution`` decline with ``BERTEDU_HIDE_SOLUTIONS=1``; the source files
stay readable, so this is a nudge, not a lock (docs/teaching.md).
"""
from __future__ import annotations

import functools
import inspect
import os
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


def checker(name: str, n_cases: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn a checker body into a checker: "not implemented yet", a failure, or "passed".

    The body runs the learner's function on every case and calls ``fail`` on the first
    wrong one; a ``NotImplementedError`` from the learner's stub becomes a friendly note::

        @checker("split_heads", n_cases=2)
        def check_split_heads(function): ...

    Extra arguments after the learner's function (data, a model) are passed to the body.
    """

    def wrap(body: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(body)
        def check(function: Callable, *args: Any, **kwargs: Any) -> None:
            try:
                body(function, *args, **kwargs)
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


HIDE_SOLUTIONS_ENV = "BERTEDU_HIDE_SOLUTIONS"


def print_solution(solutions: dict[str, Callable], name: str) -> None:
    """Print the source of a reference solution (unless ``BERTEDU_HIDE_SOLUTIONS=1``)."""
    if name not in solutions:
        raise ValueError(f"No solution called {name!r}; there are: {', '.join(solutions)}.")
    if os.environ.get(HIDE_SOLUTIONS_ENV, "").strip() not in ("", "0"):
        print(f"Solutions are withheld in this class ({HIDE_SOLUTIONS_ENV} is set): ask your teacher.")
        return
    print(inspect.getsource(solutions[name]))


def check_prediction(function: Callable[[], Any], measure: Callable[[], float], *, what: str, tolerance: float,
                     unit: str = "", why: str = "") -> None:
    """The body of a predict-then-run checker: compare the learner's guess with the run.

    ``function()`` returns the prediction (its stub raises ``NotImplementedError``);
    ``measure()`` runs the experiment, only once a prediction was made. Prints both numbers; within ``tolerance`` (absolute, in ``unit``) it returns, else it
    fails with the measured value and ``why``, the reason a first guess is often off.
    """
    predicted = call_learner(function, "no input (it returns your prediction)")
    if not isinstance(predicted, (int, float)) or isinstance(predicted, bool):
        fail(f"Return your prediction as a number; got {predicted!r}.")
    actual = float(measure())
    print(f"{what}: you predicted {predicted:g}{unit}, the run gives {actual:.3g}{unit}.")
    if abs(predicted - actual) > tolerance:
        fail(f"Off by {predicted - actual:+.3g}{unit} (within {tolerance:g}{unit} counts as right)."
             + (f"\n  Why: {why}" if why else ""))
