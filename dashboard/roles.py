"""The account vocabulary, without the account store: roles and the error a user command gives.

Kept apart from ``dashboard.users`` (argon2, SQLite) so that the command line can offer the roles
in its help without loading either.
"""

ROLES = ("wearer", "clinician", "admin")


class UserError(ValueError):
    """A user command that cannot be done; the message says why."""
