"""The job of the RQ ceiling: nothing, so only the queue is measured."""


def noop() -> None:
    return None
