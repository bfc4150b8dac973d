from integrations.team.roles import role_of


def console(request) -> dict:
    user = getattr(request, "user", None)
    return {"console_role": role_of(user) if user is not None else None}
