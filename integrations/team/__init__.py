"""The team: users and their roles, invitations, API tokens and the login throttle."""
