from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from ..errors import ApplicationError
from ..models import Membership, Project, Role
from .audit import audit


@transaction.atomic
def project_create(*, name: str, owner, slug: str = "", description: str = "") -> Project:  # type: ignore[no-untyped-def]
    """Create a project with ``owner`` as its first owner."""
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
def membership_add(*, project: Project, actor, identifier: str, role: str) -> Membership:  # type: ignore[no-untyped-def]
    """Add an existing user, found by username or e-mail, to the project."""
    identifier = identifier.strip()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.")
    users = get_user_model().objects.filter(
        Q(username__iexact=identifier) | (Q(email__iexact=identifier) & ~Q(email=""))
    )
    matches = list(users[:2])
    if not identifier or not matches:
        raise ApplicationError(f"No user with the username or e-mail '{identifier}'.")
    if len(matches) > 1:
        raise ApplicationError(f"'{identifier}' matches several users; use the username.")
    user = matches[0]
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
def membership_set_role(*, membership: Membership, actor, role: str) -> Membership:  # type: ignore[no-untyped-def]
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
def membership_remove(*, membership: Membership, actor) -> None:  # type: ignore[no-untyped-def]
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _ensure_an_owner_remains(membership=membership)
    audit(
        project=membership.project,
        actor=actor,
        action="member.remove",
        target=membership.user.username,
    )
    membership.delete()


def api_token_get_or_create(*, user) -> Token:  # type: ignore[no-untyped-def]
    token, _ = Token.objects.get_or_create(user=user)
    return token


@transaction.atomic
def api_token_rotate(*, user) -> Token:  # type: ignore[no-untyped-def]
    """Replace the user's API token; the old one stops working at once."""
    Token.objects.filter(user=user).delete()
    token = Token.objects.create(user=user)
    audit(project=None, actor=user, action="token.rotate", target=user.username)
    return token
