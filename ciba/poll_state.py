"""The 0.1 home of the poll-state classes, kept because settings name them by this path
(``CIBA["POLL_STATE_CLASS"] = "ciba.poll_state.RedisPollState"``). They live in
``ciba.polling`` now."""

from .polling import DatabasePollState, PollStateUnavailable, RedisPollState, poll_state

__all__ = ["DatabasePollState", "PollStateUnavailable", "RedisPollState", "poll_state"]
