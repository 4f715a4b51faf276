"""What can go wrong with a machine stored in Redis, besides the local contract."""

from __future__ import annotations


class RedisMachineError(RuntimeError):
    """A machine stored in Redis cannot be followed as the contract requires."""


class HistoryLost(RedisMachineError):
    """Transitions this process had not read are gone from the server.

    The log of transitions is bounded: a process that fell further behind
    than its length (after a long disconnection, say), or a machine that
    expired or was deleted, leaves outcomes that cannot be known. Pending
    waits and subscriptions of that machine get this error instead of a guess;
    the machine then follows the server's current state.
    """


class StateRegressed(RedisMachineError):
    """The server's state is older than one this process has seen.

    Acknowledged transitions were lost: a crash under a weaker fsync policy, a
    failover to a replica that had not received them, or the machine deleted
    and created again. Pending waits and subscriptions of that machine get
    this error; the machine then follows the server's state.
    """


class CorruptState(RedisMachineError):
    """A stored value that the machine's codec cannot decode.

    Written by something else, or by another version of the state type. It is
    reported, never read as a wrong state and never executed.
    """
