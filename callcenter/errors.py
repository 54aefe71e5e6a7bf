"""Domain errors. `api/errors.py` maps each class to an HTTP status and a readable message."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    """The request is valid but clashes with the current state (HTTP 409)."""


class PermissionDenied(DomainError):
    pass


class InvalidField(DomainError):
    """One field of the input is wrong; `field` is its dotted path, e.g. `customer.phone`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class InvalidFields(DomainError):
    """Several fields of the input are wrong at once: `(field, message)` for each, so that a
    form shows every problem in one round."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems
