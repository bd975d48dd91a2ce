"""The rubric editor. Every edit is an htmx POST that changes the person's draft and
answers with the editor re-rendered (``annotation/_editor.html``); without JavaScript the
same forms post normally and land back on the page.

Reads need the viewer role, edits the editor role, comments the reviewer role; the
workflow service checks the role each transition needs.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from annotation.errors import ApplicationError
from annotation.forms import cleaned, error_text
from annotation.http import SignedInRequest
from annotation.projects import selectors as project_selectors
from annotation.projects.models import Project, Role
from annotation.projects.selectors import ProjectAccess
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.importers.single_rubric import SHAPES
from annotation.prompts.models import Prompt
from annotation.rubrics import comments as rubric_comments
from annotation.rubrics import drafts as rubric_drafts
from annotation.rubrics import selectors as rubric_selectors
from annotation.rubrics import workflow
from annotation.rubrics.forms import RubricStartForm, WorkflowForm
from annotation.rubrics.models import Criterion, Rubric

MAX_IMPORT_BYTES = 2 * 1024 * 1024


def _bad_request(message: str) -> HttpResponse:
    """A 400 whose body is a fixed message as plain text: nothing the client sent is
    echoed back (a reflected value in an HTML body would run as markup)."""
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


UNKNOWN_EDIT = "Unknown edit: one of " + ", ".join(("discard", *rubric_drafts.OPS)) + "."


def editor_context(
    request: SignedInRequest,
    access: ProjectAccess,
    rubric: Rubric | None,
    *,
    prompt: Prompt | None = None,
    **extra: Any,
) -> dict[str, Any]:
    editable = rubric is None or rubric.status != Rubric.Status.ARCHIVED
    context = {
        "project": access.project,
        "access": access,
        "rubric": rubric,
        "prompt": prompt if prompt is not None else (rubric.prompt if rubric else None),
        "state": rubric_selectors.rubric_editor_state(rubric=rubric, user=request.user)
        if rubric
        else None,
        "can_edit": editable and access.can_edit,
        "can_review": access.can_review,
        # Offered only to who may approve: a reviewer, and not the version's author where
        # the project wants another reviewer (the workflow service checks it again).
        "approval_refusal": workflow.self_approval_refusal(rubric, request.user, access.project)
        if rubric is not None and access.can_review
        else "",
        "editing": "",
        "values": {},
        "error": "",
        "notice": "",
        "categories": Criterion.Category.choices,
        "kinds": Criterion.Kind.choices,
    }
    context.update(extra)
    return context


def _page_url(project: Project, rubric: Rubric | None, prompt: Prompt | None = None) -> str:
    prompt_id = prompt.pk if prompt else (rubric.prompt_id if rubric else None)
    if prompt_id or rubric is None:
        return reverse("annotation:prompt_detail", args=[project.slug, prompt_id])
    return reverse("annotation:rubric_page", args=[project.slug, rubric.pk])


def _respond(
    request: SignedInRequest,
    access: ProjectAccess,
    rubric: Rubric | None,
    *,
    prompt: Prompt | None = None,
    **extra: Any,
) -> HttpResponse:
    """The editor fragment for htmx; a redirect to the page (with the message) otherwise."""
    if request.htmx:
        context = editor_context(request, access, rubric, prompt=prompt, **extra)
        return render(request, "annotation/_editor.html", context)
    if extra.get("error"):
        messages.error(request, extra["error"])
    elif extra.get("notice"):
        messages.success(request, extra["notice"])
    return redirect(_page_url(access.project, rubric, prompt))


def _rubric(
    request: SignedInRequest, slug: str, rubric_id: int, role: Role
) -> tuple[ProjectAccess, Rubric]:
    access = project_selectors.project_get_for_user(user=request.user, slug=slug, min_role=role)
    return access, rubric_selectors.rubric_get(project=access.project, rubric_id=rubric_id)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def rubric_page(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    """A project-wide rubric's editor; a prompt's rubric lives on the prompt's page."""
    access, rubric = _rubric(request, slug, rubric_id, Role.VIEWER)
    if rubric.prompt_id:
        query = f"?{request.GET.urlencode()}" if request.GET else ""
        return redirect(_page_url(access.project, rubric) + query)
    context = editor_context(request, access, rubric, editing=request.GET.get("editing", ""))
    return render(request, "annotation/rubric_detail.html", context)


@login_required
@require_GET
def rubric_editor(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    """The editor fragment, with ``?editing=KEY`` to open one criterion's form."""
    access, rubric = _rubric(request, slug, rubric_id, Role.VIEWER)
    context = editor_context(request, access, rubric, editing=request.GET.get("editing", ""))
    if not context["can_edit"]:
        context["editing"] = ""
    return render(request, "annotation/_editor.html", context)


def _edit_data(request: SignedInRequest) -> dict[str, Any]:
    data: dict[str, Any] = request.POST.dict()
    upload = request.FILES.get("file")
    if upload is not None:
        if upload.size and upload.size > MAX_IMPORT_BYTES:
            raise ApplicationError(f"{upload.name} is larger than 2 MB; nothing was imported.")
        try:
            data["json"] = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApplicationError(f"{upload.name} is not UTF-8 text.") from None
        data["name"] = upload.name
    return data


def _apply_edit(
    request: SignedInRequest,
    access: ProjectAccess,
    rubric: Rubric | None,
    op: str,
    prompt: Prompt | None,
) -> HttpResponse:
    """One edit of the person's draft; for a prompt without a rubric (``rubric`` None), the
    edit that starts it."""
    data: dict[str, Any] = {}
    try:
        data = _edit_data(request)
        if rubric is not None:
            rubric_drafts.draft_edit(rubric=rubric, user=request.user, op=op, data=data)
        elif prompt is not None:
            rubric = rubric_drafts.draft_edit_new_rubric(
                project=access.project, prompt=prompt, user=request.user, op=op, data=data
            )
            rubric = rubric_selectors.rubric_get(project=access.project, rubric_id=rubric.pk)
    except ApplicationError as exc:
        return _respond(
            request,
            access,
            rubric,
            prompt=prompt,
            error=exc.message,
            editing=data.get("key", "") if op == "update" else "",
            values=data,
            adding=op == "add",
        )
    return _respond(request, access, rubric, prompt=prompt, adding=op == "add")


@login_required
@require_POST
def rubric_draft(request: SignedInRequest, slug: str, rubric_id: int, op: str) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.EDITOR)
    if op == "discard":
        rubric_drafts.draft_discard(rubric=rubric, user=request.user)
        return _respond(request, access, rubric, notice="Unsaved changes discarded.")
    if op not in rubric_drafts.OPS:
        return _bad_request(UNKNOWN_EDIT)
    return _apply_edit(request, access, rubric, op, None)


@login_required
@require_POST
def prompt_rubric_start(request: SignedInRequest, slug: str, prompt_id: int) -> HttpResponse:
    """Start a prompt's rubric with its first edit (add, paste or import)."""
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )
    prompt = prompt_selectors.prompt_get(project=access.project, prompt_id=prompt_id)
    op = request.POST.get("op", "add")
    if op not in rubric_drafts.OPS:
        return _bad_request("Unknown edit: one of " + ", ".join(rubric_drafts.OPS) + ".")
    return _apply_edit(
        request, access, rubric_selectors.rubric_for_prompt(prompt=prompt), op, prompt
    )


@login_required
@require_POST
def project_rubric_create(request: SignedInRequest, slug: str) -> HttpResponse:
    access = project_selectors.project_get_for_user(
        user=request.user, slug=slug, min_role=Role.EDITOR
    )
    title = cleaned(RubricStartForm, request.POST)["title"]
    rubric = rubric_drafts.rubric_start(project=access.project, actor=request.user, title=title)
    return redirect("annotation:rubric_page", slug=slug, rubric_id=rubric.pk)


@login_required
@require_POST
def rubric_save(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.EDITOR)
    try:
        outcome = rubric_drafts.draft_save(
            rubric=rubric, user=request.user, note=request.POST.get("note", "")
        )
    except ApplicationError as exc:
        return _respond(request, access, rubric, error=exc.message)
    rubric = rubric_selectors.rubric_get(project=access.project, rubric_id=rubric.pk)
    if outcome.error:
        error = (
            f"Version {outcome.merged_with} was saved while you edited. Your draft now holds "
            f"its changes and yours, but together they fail a check: {outcome.error}"
        )
        return _respond(request, access, rubric, error=error)
    if outcome.version is None:
        notice = (
            f"Version {outcome.merged_with} was saved while you edited. Changes to different "
            f"criteria were merged; choose for the {outcome.conflicts} "
            f"{'criterion' if outcome.conflicts == 1 else 'criteria'} you both changed."
        )
        return _respond(request, access, rubric, notice=notice)
    notice = f"Saved as version {outcome.version.number}."
    if outcome.merged_with:
        notice = (
            f"Version {outcome.merged_with} was saved while you edited; its changes and yours "
            f"touched different criteria and were merged. {notice}"
        )
    response = _respond(request, access, rubric, notice=notice)
    # Panels that show results of the saved rubric (the prompt's verdicts) reload.
    response["HX-Trigger"] = "rubric-saved"
    return response


@login_required
@require_POST
def rubric_resolve(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.EDITOR)
    choices = {
        k.removeprefix("choice-"): v for k, v in request.POST.items() if k.startswith("choice-")
    }
    try:
        rubric_drafts.draft_resolve(rubric=rubric, user=request.user, choices=choices)
    except ApplicationError as exc:
        return _respond(request, access, rubric, error=exc.message)
    return _respond(request, access, rubric, notice="Conflicts settled; review and save.")


WORKFLOW_NOTICES = {
    "submit": "Submitted for review.",
    "approve": "Approved: this version is now the one exports use.",
    "request_changes": "Sent back to the authors with your comment.",
    "archive": "Archived.",
}


@login_required
@require_POST
def rubric_workflow(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.VIEWER)
    form = WorkflowForm(request.POST)
    if "action" in form.errors:
        return _bad_request("Unknown action: one of " + ", ".join(WORKFLOW_NOTICES) + ".")
    if form.errors:
        return _respond(request, access, rubric, error=error_text(form))
    action = form.cleaned_data["action"]
    try:
        if action == "submit":
            workflow.rubric_submit_for_review(rubric=rubric, actor=request.user)
        elif action == "archive":
            workflow.rubric_archive(rubric=rubric, actor=request.user)
        else:
            workflow.rubric_review(
                rubric=rubric,
                actor=request.user,
                decision=action,
                comment=form.cleaned_data["comment"],
            )
    except ApplicationError as exc:
        return _respond(request, access, rubric, error=exc.message)
    rubric = rubric_selectors.rubric_get(project=access.project, rubric_id=rubric.pk)
    return _respond(request, access, rubric, notice=WORKFLOW_NOTICES[action])


@login_required
@require_POST
def rubric_comment(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.REVIEWER)
    key = request.POST.get("key", "")
    try:
        rubric_comments.comment_add(
            rubric=rubric, author=request.user, text=request.POST.get("text", ""), criterion_key=key
        )
    except ApplicationError as exc:
        return _respond(request, access, rubric, error=exc.message, open_comments=key)
    return _respond(request, access, rubric, open_comments=key)


@login_required
@require_POST
def rubric_comment_resolve(
    request: SignedInRequest, slug: str, rubric_id: int, comment_id: int
) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.REVIEWER)
    comment = rubric_selectors.comment_get(rubric=rubric, comment_id=comment_id)
    rubric_comments.comment_resolve(
        comment=comment, actor=request.user, resolved=request.POST.get("reopen") != "1"
    )
    return _respond(request, access, rubric, open_comments=str(comment.criterion_key or ""))


@login_required
@require_GET
def rubric_export(request: SignedInRequest, slug: str, rubric_id: int) -> HttpResponse:
    access, rubric = _rubric(request, slug, rubric_id, Role.VIEWER)
    shape = request.GET.get("shape", "healthbench")
    version = request.GET.get("version", "")
    if shape not in SHAPES or (version and not (version.isascii() and version.isdigit())):
        return _bad_request("shape is healthbench or rar; version is a number.")
    body = rubric_selectors.rubric_export_json(
        rubric=rubric, shape=shape, number=int(version) if version else None
    )
    response = JsonResponse(body, json_dumps_params={"ensure_ascii": False, "indent": 2})
    number = version or (rubric.current_version.number if rubric.current_version else 0)
    name = f"rubric-{rubric.pk}-v{number}-{shape}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
