"""Whether a new build does worse than the current one, judged by what their sagas show.

Pure: given each build's figures over the same window (`BuildFigures`), the findings, one line
each; none means healthy so far. The figures are shares of the sagas each build started in the
window, so a 5 % ramp is compared fairly with the 95 % beside it: a refusal rate that both
builds share (a customer's card, a service down for everyone) is not held against the new one.
"""

from __future__ import annotations

from ops.rollout.plan import BuildFigures, Limits


def findings(
    candidate: BuildFigures, baseline: BuildFigures, limits: Limits, names: tuple[str, str]
) -> list[str]:
    """What is wrong with `candidate` next to `baseline`, one line each.

    Args:
        candidate: The new build's figures.
        baseline: The current build's, over the same window.
        limits: How much worse is too much, and from how many sagas on.
        names: The two builds' ids, for the lines: (candidate, baseline).
    """
    new, current = names
    found = []
    if candidate.stuck:
        found.append(
            f"{candidate.stuck} saga(s) on {new} fail their workflow task again and again "
            f"({candidate.stuck_error}): a bug of the build"
        )
    if candidate.started < limits.min_sagas:
        return found

    def worse(what: str, mine: int, theirs: int) -> None:
        share, base = mine / candidate.started, _share(theirs, baseline.started)
        if mine and share > base + limits.margin:
            found.append(
                f"{mine} of {candidate.started} saga(s) on {new} {what}, against "
                f"{theirs} of {baseline.started} on {current}"
            )

    for activity, count in sorted(candidate.retried.items()):
        error = candidate.retried_error.get(activity, "")
        worse(
            f"retry {activity} with no progress ({error})",
            count,
            baseline.retried.get(activity, 0),
        )
    worse("failed for the build's own reasons", candidate.failed_own, baseline.failed_own)
    worse("wait for an operator", candidate.waiting, baseline.waiting)
    for step, count in sorted(candidate.refused.items()):
        worse(f"were refused at {step}", count, baseline.refused.get(step, 0))
    return found


def _share(count: int, of: int) -> float:
    return count / of if of else 0.0
