"""What a command raises when it cannot do what it was asked: the message
says why, for the person at the terminal (``error: ...``, exit 2)."""


class CommandError(Exception):
    pass
