"""Three roles, stored as Django groups (created by migration 0002_roles).

Admin: everything, including users and roles. Editor: create, edit, test and delete
integrations, models and auth profiles; use the Sandbox. Member: read the catalog
and details with secrets masked; use the Sandbox. Superusers are Admins; a signed-in
user in no group is a Member.
"""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied

ADMIN = "Admin"
EDITOR = "Editor"
MEMBER = "Member"
ROLES = (ADMIN, EDITOR, MEMBER)


def role_of(user) -> str | None:
    """Return the user's role, cached on the user object for the request."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_console_role", None)
    if cached:
        return cached
    names = {g.name for g in user.groups.all()}  # uses a prefetch when the caller made one
    role = next((r for r in ROLES if r in names), MEMBER)
    user._console_role = role
    return role


def can_edit(user) -> bool:
    return role_of(user) in (ADMIN, EDITOR)


def is_admin(user) -> bool:
    return role_of(user) == ADMIN


def editor_required(view=None, *, what: str = "change integrations, models and auth profiles"):
    """Refuse (403) a signed-in user who may only read. `what`: what Editors may do here,
    said in the refusal (`@editor_required(what="manage gateway keys")`)."""

    def decorate(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not can_edit(request.user):
                raise PermissionDenied(
                    f"Your role does not allow this. Editors and Admins can {what}."
                )
            return view(request, *args, **kwargs)

        return wrapped

    return decorate(view) if view is not None else decorate


def admin_required(view):
    """Refuse (403) anyone but an Admin."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied(
                "Only Admins can see this page: users, the audit log, export and import."
            )
        return view(request, *args, **kwargs)

    return wrapped


def set_role(user, role: str) -> None:
    from django.contrib.auth.models import Group

    groups = [Group.objects.get_or_create(name=name)[0] for name in ROLES]
    user.groups.remove(*groups)
    user.groups.add(next(g for g in groups if g.name == role))
    user.__dict__.pop("_console_role", None)
