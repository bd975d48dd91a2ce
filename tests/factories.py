from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from annotation.projects.models import Membership, Project, Role
from annotation.prompts.models import Prompt, Response
from annotation.rubrics.models import Criterion, Rubric, RubricVersion


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"p{n:05d}")
    messages = factory.LazyAttribute(
        lambda p: [{"role": "user", "content": f"Question {p.external_id}?"}]
    )


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    prompt = factory.SubFactory(PromptFactory)
    source = "model-a"
    content = factory.Sequence(lambda n: f"Answer number {n}.")


class RubricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rubric
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    prompt = None
    title = factory.Sequence(lambda n: f"Rubric {n}")

    @factory.post_generation
    def criteria(self, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if not create:
            return
        version = RubricVersion.objects.create(rubric=self, number=1)
        for i, (text, points) in enumerate(extracted or [("Is correct", 5), ("Is rude", -3)]):
            Criterion.objects.create(version=version, position=i, text=text, points=points)
        self.current_version = version
        self.save(update_fields=["current_version"])
