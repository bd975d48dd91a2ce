"""Writes of projects and people: creating a project, members and their roles, API tokens,
and the audit event every write records."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from annotation.errors import ApplicationError, NotAllowed
from annotation.projects.models import AuditEvent, Membership, Project, Role
from annotation.projects.selectors import can_create_projects


@transaction.atomic
def project_create(*, name: str, owner: User, slug: str = "", description: str = "") -> Project:
    """Create a project with ``owner`` as its first owner, if ALLOW_PROJECT_CREATION lets
    ``owner`` create projects (management commands run by the operator pass a superuser)."""
    if not can_create_projects(user=owner):
        raise NotAllowed(
            "Only staff users may create projects on this site (ALLOW_PROJECT_CREATION); "
            "ask a site admin to create one for you or to add you to one."
        )
    name = name.strip()
    if not name:
        raise ApplicationError("A project needs a name.")
    slug = slugify(slug or name)[:80]
    if not slug:
        raise ApplicationError("A project needs a slug made of letters, digits or dashes.")
    if Project.objects.filter(slug=slug).exists():
        raise ApplicationError(f"A project with the slug '{slug}' already exists.")
    project = Project.objects.create(name=name, slug=slug, description=description)
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    audit(project=project, actor=owner, action="project.create", target=slug)
    return project


@transaction.atomic
def membership_add(*, project: Project, actor: User, username: str, role: str) -> Membership:
    """Add an existing user, named by their exact username, to the project.

    Only the exact username finds someone: no e-mail lookup and no case folding, so the
    form cannot be used to learn whose address is whose or which accounts exist by e-mail.
    """
    username = username.strip()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.")
    user = get_user_model().objects.filter(username=username).first() if username else None
    if user is None:
        raise ApplicationError(f"No user with the username '{username[:150]}'.")
    if Membership.objects.filter(project=project, user=user).exists():
        raise ApplicationError(f"{user.username} is already a member of this project.")
    membership = Membership.objects.create(project=project, user=user, role=role)
    audit(project=project, actor=actor, action="member.add", target=user.username, role=role)
    return membership


def _ensure_an_owner_remains(*, membership: Membership) -> None:
    """Caller is in a transaction; the project's owner rows are locked here so that two
    owners demoting each other at once cannot leave the project without one."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(project_id=membership.project_id, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
    if membership.role == Role.OWNER and not [pk for pk in owners if pk != membership.pk]:
        raise ApplicationError("A project must keep at least one owner.")


@transaction.atomic
def membership_set_role(*, membership: Membership, actor: User, role: str) -> Membership:
    if role not in Role.values:
        raise ApplicationError(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if role != Role.OWNER:
        _ensure_an_owner_remains(membership=membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit(
        project=membership.project,
        actor=actor,
        action="member.role",
        target=membership.user.username,
        old=old,
        new=role,
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _ensure_an_owner_remains(membership=membership)
    audit(
        project=membership.project,
        actor=actor,
        action="member.remove",
        target=membership.user.username,
    )
    membership.delete()


def api_token_get_or_create(*, user: User) -> Token:
    token, _ = Token.objects.get_or_create(user=user)
    return token


@transaction.atomic
def api_token_rotate(*, user: User) -> Token:
    """Replace the user's API token; the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    audit(project=None, actor=user, action="token.rotate", target=user.username)
    return token


def audit(
    *,
    project: Project | None,
    actor: User | AnonymousUser | None,
    action: str,
    target: str = "",
    **data: Any,
) -> None:
    AuditEvent.objects.create(
        project=project,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target=target[:200],
        data=data,
    )


@transaction.atomic
def project_settings_save(
    *, project: Project, actor: User | AnonymousUser | None, data: dict[str, Any]
) -> Project:
    """Save an owner's settings (``data`` as ``ProjectSettingsForm`` cleans it), audited
    with the names of the fields that changed."""
    changed = [name for name, value in data.items() if getattr(project, name) != value]
    for name in changed:
        setattr(project, name, data[name])
    if changed:
        project.save(update_fields=changed)
        audit(project=project, actor=actor, action="project.settings", target=project.slug,
              fields=changed)  # fmt: skip
    return project


@transaction.atomic
def account_create(
    *, project: Project, actor: User, username: str, email: str, role: str
) -> tuple[Membership, str]:
    """An account for a colleague, made a member of ``project`` with ``role``, and the
    path of its one-time set-password link (valid for PASSWORD_RESET_TIMEOUT, and only
    until a password is set: the token depends on it). The account has no usable password
    until then, and no e-mail is sent: the owner hands the link over."""
    if not settings.OWNERS_CREATE_ACCOUNTS:
        raise NotAllowed(
            "On this site accounts are made by the site admin (OWNERS_CREATE_ACCOUNTS)."
        )
    username = username.strip()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.")
    if get_user_model().objects.filter(username=username).exists():
        raise ApplicationError(
            f"The username '{username[:150]}' is taken: add that person as a member instead."
        )
    user = get_user_model().objects.create_user(username=username, email=email)  # no password
    membership = Membership.objects.create(project=project, user=user, role=role)
    audit(project=project, actor=actor, action="account.create", target=username, role=role)
    return membership, set_password_path(user)


def set_password_path(user: User) -> str:
    """The one-time link (a path) on which ``user`` chooses their password."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("set_password", kwargs={"uidb64": uid, "token": token})
