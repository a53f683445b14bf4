"""Choosing which instance a command acts on.

The rules, in order: an explicit ``--instance-id`` wins; otherwise the only
running instance; otherwise the user is asked on a terminal; without a terminal
the command refuses and lists the candidates. The first of several is never
picked silently.
"""

from __future__ import annotations

from typing import IO, Any, Callable, Sequence, TypeVar

from soong.core.errors import AbortedError, ApiNotFoundError, NotFoundError

#: Statuses in which an instance counts as running for selection.
RUNNING_STATUSES = ("booting", "active", "unhealthy")

T = TypeVar("T")


def describe_instance(instance: Any) -> str:
    """One line naming an instance: id, name, type, address and status."""
    details = [instance.name or "unnamed", instance.instance_type, instance.ip or "no address yet", instance.status]
    return f"{instance.id} ({', '.join(str(d) for d in details if d)})"


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, OSError):
        return False


def choose_one(candidates: Sequence[T], *, describe: Callable[[T], str], key: Callable[[T], str], what: str,
               stdin: IO[str] | None, stderr: IO[str] | None, flag: str = "--instance-id") -> T:
    """Pick one of ``candidates``: the only one, or ask on a terminal, or refuse listing them.

    :param what: plural noun for messages (``running instances``).
    :param key: the identifier a user may type instead of the number.
    Raises :class:`NotFoundError` when there are none and :class:`AbortedError`
    when there are several and no terminal answers.
    """
    if not candidates:
        raise NotFoundError(f"no {what}")
    if len(candidates) == 1:
        return candidates[0]
    listing = "; ".join(describe(c) for c in candidates)
    if not (_is_terminal(stdin) and stderr is not None):
        raise AbortedError(f"{len(candidates)} {what}: choose one with {flag}: {listing}")
    stderr.write(f"{len(candidates)} {what}:\n")
    for number, candidate in enumerate(candidates, 1):
        stderr.write(f"  {number}) {describe(candidate)}\n")
    stderr.write(f"Which one? [1-{len(candidates)}] ")
    stderr.flush()
    answer = stdin.readline().strip()
    for number, candidate in enumerate(candidates, 1):
        if answer in (str(number), key(candidate)):
            return candidate
    raise AbortedError(f"no choice made ({answer!r} is not one of 1-{len(candidates)}); nothing was done")


def choose_instance(context: Any, instance_id: str | None = None, *, stdin: IO[str] | None = None,
                    stderr: IO[str] | None = None, statuses: Sequence[str] = RUNNING_STATUSES,
                    provider: Any = None) -> Any:
    """The :class:`~soong.core.types.Instance` a command should act on.

    :param context: the :class:`~soong.core.context.Context` (its provider is asked).
    :param instance_id: an explicit ``--instance-id`` (looked up, must be in ``statuses``).
    :param stdin: where an answer is read; asking happens only if it is a terminal.
    :param stderr: where the question is written.
    :param statuses: which statuses count as running.
    :param provider: a provider object to use instead of ``context.provider()``.
    """
    provider = provider if provider is not None else context.provider()
    if instance_id:
        try:
            instance = provider.get_instance(instance_id)
        except ApiNotFoundError:
            raise NotFoundError(f"no instance with id '{instance_id}'") from None
        if instance.status not in statuses:
            raise NotFoundError(f"instance {instance_id} is {instance.status}, not running")
        return instance
    running = [i for i in provider.list_instances() if i.status in statuses]
    running.sort(key=lambda i: (i.name or "", i.id))
    return choose_one(running, describe=describe_instance, key=lambda i: i.id, what="running instances",
                      stdin=stdin, stderr=stderr)
