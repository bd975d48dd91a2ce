"""Turn one decoded record (a JSON object or a CSV row) into a ParsedRecord.

Each ``parse_*`` function takes the object and its line number and either returns a
ParsedRecord or raises InvalidRecord whose message is the reason shown to the user.

Text is kept byte for byte: prompts, responses and criterion texts are stored exactly as
the file has them (only a format's own framing, such as hh-rlhf's ``\\n\\nHuman: `` labels
or a RaR ``Essential Criteria:`` prefix, is taken off). Fields a format does not map onto
a column are kept in the prompt's metadata: unknown top-level fields under their own
names, unknown fields of rubric items under ``rubric_items`` (see ``with_rubric_items``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from annotation.prompts.importers.records import (
    CATEGORIES,
    KINDS,
    ParsedCriterion,
    ParsedRecord,
    ParsedResponse,
)
from annotation.prompts.importers.validation import (
    InvalidRecord,
    as_dict,
    as_list,
    as_messages,
    as_number,
    as_prompt,
    as_source,
    as_str,
    as_tags,
    external_id,
    get,
    put_metadata,
    rest,
)

Parser = Callable[[Mapping[str, Any], int], ParsedRecord]

RUBRIC_ITEMS_KEY = "rubric_items"


def with_rubric_items(metadata: dict[str, Any], criteria: list[ParsedCriterion]) -> dict[str, Any]:
    """Keep the rubric items' unknown fields in ``metadata["rubric_items"]``: a list aligned
    by position with the source's rubric list (which is the order of the imported rubric
    version), one object per item, ``{}`` for an item that has none. Absent when no item
    has an unknown field, so plain files keep plain metadata."""
    if any(c.extra for c in criteria):
        put_metadata(metadata, RUBRIC_ITEMS_KEY, [dict(c.extra) for c in criteria])
    return metadata


# --- healthbench -----------------------------------------------------------------------


def healthbench_criteria(value: Any, where: str = "rubrics") -> list[ParsedCriterion]:
    """HealthBench rubric items ``[{criterion, points, tags}]``; negative points are pitfalls."""
    criteria = []
    for i, item in enumerate(as_list(value, where, non_empty=True)):
        at = f"{where}[{i}]"
        item = as_dict(item, at)
        points = as_number(get(item, "points", at), f"{at}.points")
        criteria.append(
            ParsedCriterion(
                text=as_str(get(item, "criterion", at), f"{at}.criterion", non_empty=True),
                points=points,
                category="pitfall" if points < 0 else "",
                tags=as_tags(item.get("tags"), f"{at}.tags"),
                extra=rest(item, ("criterion", "points", "tags")),
            )
        )
    return criteria


def parse_healthbench(obj: Mapping[str, Any], line: int) -> ParsedRecord:
    messages = as_messages(get(obj, "prompt"), "prompt")
    criteria = healthbench_criteria(get(obj, "rubrics"))
    metadata = rest(obj, ("prompt", "rubrics", "prompt_id", "ideal_completions_data"))
    reference, responses = "", []
    ideal = obj.get("ideal_completions_data")
    if ideal is not None:
        ideal = as_dict(ideal, "ideal_completions_data")
        if ideal.get("ideal_completion") is not None:
            reference = as_str(ideal["ideal_completion"], "ideal_completions_data.ideal_completion")
        refs = ideal.get("ideal_completions_ref_completions") or []
        where = "ideal_completions_data.ideal_completions_ref_completions"
        for i, ref in enumerate(as_list(refs, where)):
            responses.append(ParsedResponse("reference", as_str(ref, f"{where}[{i}]")))
        extra = rest(ideal, ("ideal_completion", "ideal_completions_ref_completions"))
        if extra:
            metadata["ideal_completions_data"] = extra
    return ParsedRecord(
        line=line,
        external_id=external_id(obj, ("prompt_id",), messages),
        messages=messages,
        reference_answer=reference,
        metadata=with_rubric_items(metadata, criteria),
        responses=responses,
        criteria=criteria,
    )


# --- RaR (Rubrics as Rewards) ----------------------------------------------------------

_RAR_PREFIX = re.compile(r"^\s*(essential|important|optional|pitfall)\s+criteria\s*:\s*", re.I)


def split_rar_description(description: str) -> tuple[str, str]:
    """``"Essential Criteria: Mentions X"`` → ``("essential", "Mentions X")``.

    Only the prefix (with the spaces around it) is taken off; the text is kept as it is,
    so writing ``"Essential Criteria: " + text`` gives the source's description back."""
    match = _RAR_PREFIX.match(description)
    if match is None:
        return "", description
    return match.group(1).lower(), description[match.end() :]


def rar_criteria(value: Any, where: str = "rubric") -> list[ParsedCriterion]:
    """RaR rubric items ``[{title, description, weight}]``, the category taken from the
    description's ``Essential/Important/Optional/Pitfall Criteria:`` prefix."""
    criteria = []
    for i, item in enumerate(as_list(value, where, non_empty=True)):
        at = f"{where}[{i}]"
        item = as_dict(item, at)
        description = as_str(get(item, "description", at), f"{at}.description", non_empty=True)
        category, text = split_rar_description(description)
        if not text.strip():
            raise InvalidRecord(f"{at}.description has no text after its prefix")
        title = item.get("title")
        tags = [f"title:{as_str(title, f'{at}.title')}"] if title else []
        criteria.append(
            ParsedCriterion(
                text=text,
                points=as_number(get(item, "weight", at), f"{at}.weight"),
                category=category,
                tags=tags,
                extra=rest(item, ("title", "description", "weight")),
            )
        )
    return criteria


def parse_rar(obj: Mapping[str, Any], line: int) -> ParsedRecord:
    question = as_str(get(obj, "question"), "question", non_empty=True)
    messages = [{"role": "user", "content": question}]
    criteria = rar_criteria(get(obj, "rubric"))
    reference = obj.get("reference_answer")
    return ParsedRecord(
        line=line,
        external_id=external_id(obj, ("id", "question_id"), messages),
        messages=messages,
        reference_answer="" if reference is None else as_str(reference, "reference_answer"),
        metadata=with_rubric_items(
            rest(obj, ("question", "rubric", "reference_answer", "id", "question_id")), criteria
        ),
        criteria=criteria,
    )


# --- ResearchQA ------------------------------------------------------------------------


def parse_researchqa(obj: Mapping[str, Any], line: int) -> ParsedRecord:
    query = as_str(get(obj, "query"), "query", non_empty=True)
    messages = [{"role": "user", "content": query}]
    criteria = []
    for i, item in enumerate(as_list(get(obj, "rubric"), "rubric", non_empty=True)):
        at = f"rubric[{i}]"
        item = as_dict(item, at)
        types = item.get("type")
        if isinstance(types, str):
            types = [types]
        criteria.append(
            ParsedCriterion(
                text=as_str(get(item, "rubric_item", at), f"{at}.rubric_item", non_empty=True),
                points=1.0,
                tags=[f"type:{t}" for t in as_tags(types, f"{at}.type")],
                extra=rest(item, ("rubric_item", "type")),
            )
        )
    return ParsedRecord(
        line=line,
        external_id=external_id(obj, ("id",), messages),
        messages=messages,
        metadata=with_rubric_items(rest(obj, ("id", "query", "rubric")), criteria),
        criteria=criteria,
    )


# --- TRL preference --------------------------------------------------------------------


def _assistant_text(value: Any, where: str) -> str:
    """A TRL completion: a plain string, or the assistant turn(s) of a message list."""
    if isinstance(value, str):
        return value
    turns = [m["content"] for m in as_messages(value, where) if m["role"] == "assistant"]
    if not turns:
        raise InvalidRecord(f"{where} has no assistant message")
    return "\n\n".join(turns)


def _split_conversation(value: Any, where: str) -> tuple[list[dict[str, str]], str]:
    """A full conversation → (the turns before the final assistant turn, its content)."""
    messages = as_messages(value, where)
    if messages[-1]["role"] != "assistant":
        raise InvalidRecord(f"{where} must end with an assistant message")
    if len(messages) < 2:
        raise InvalidRecord(f"{where} has no prompt before the assistant message")
    return messages[:-1], messages[-1]["content"]


def parse_trl(obj: Mapping[str, Any], line: int) -> ParsedRecord:
    chosen, rejected = get(obj, "chosen"), get(obj, "rejected")
    if obj.get("prompt") is not None:
        messages = as_prompt(obj["prompt"], "prompt")
        chosen_text = _assistant_text(chosen, "chosen")
        rejected_text = _assistant_text(rejected, "rejected")
    elif isinstance(chosen, list):
        messages, chosen_text = _split_conversation(chosen, "chosen")
        rejected_prompt, rejected_text = _split_conversation(rejected, "rejected")
        if rejected_prompt != messages:
            raise InvalidRecord("chosen and rejected conversations have different prompts")
    else:
        raise InvalidRecord("missing field 'prompt'")
    responses = [
        ParsedResponse(
            as_source(obj.get("chosen_model"), "chosen_model", "dataset-chosen"), chosen_text
        ),
        ParsedResponse(
            as_source(obj.get("rejected_model"), "rejected_model", "dataset-rejected"),
            rejected_text,
        ),
    ]
    consumed = ("id", "prompt", "chosen", "rejected", "chosen_model", "rejected_model")
    return ParsedRecord(
        line=line,
        external_id=external_id(obj, ("id",), messages),
        messages=messages,
        metadata=rest(obj, consumed),
        responses=responses,
        preference=(0, 1),
    )


# --- generic JSONL / CSV ---------------------------------------------------------------


def _generic_response(value: Any, where: str) -> ParsedResponse:
    if isinstance(value, str):
        return ParsedResponse("imported", value)
    item = as_dict(value, where)
    metadata = item.get("metadata")
    return ParsedResponse(
        source=as_source(item.get("source"), f"{where}.source", "imported"),
        content=as_str(get(item, "content", where), f"{where}.content"),
        metadata={} if metadata is None else as_dict(metadata, f"{where}.metadata"),
    )


def _generic_criterion(value: Any, where: str) -> ParsedCriterion:
    item = as_dict(value, where)
    key = "criterion" if item.get("criterion") is not None else "text"
    category = item.get("category") or ""
    kind = item.get("kind") or "principle"
    if category not in CATEGORIES:
        raise InvalidRecord(f"{where}.category must be one of {', '.join(CATEGORIES[1:])}")
    if kind not in KINDS:
        raise InvalidRecord(f"{where}.kind must be one of {', '.join(KINDS)}")
    return ParsedCriterion(
        text=as_str(get(item, key, where), f"{where}.{key}", non_empty=True),
        points=as_number(get(item, "points", where), f"{where}.points"),
        category=category,
        kind=kind,
        tags=as_tags(item.get("tags"), f"{where}.tags"),
        extra=rest(item, (key, "points", "category", "kind", "tags")),
    )


def _preference(value: Any, count: int) -> tuple[int, int]:
    pair = as_list(value, "preference")
    valid = len(pair) == 2 and all(type(i) is int and 0 <= i < count for i in pair)
    if not valid or pair[0] == pair[1]:
        raise InvalidRecord("preference must be two different indexes into responses")
    return pair[0], pair[1]


def parse_generic(obj: Mapping[str, Any], line: int) -> ParsedRecord:
    if obj.get("messages") is not None:
        messages = as_messages(obj["messages"], "messages")
    elif obj.get("prompt") is not None:
        messages = as_prompt(obj["prompt"], "prompt")
    else:
        raise InvalidRecord("missing field 'prompt' (or 'messages')")
    responses = [
        _generic_response(item, f"responses[{i}]")
        for i, item in enumerate(as_list(obj.get("responses") or [], "responses"))
    ]
    if obj.get("response") is not None:
        source = as_source(obj.get("source"), "source", "imported")
        responses.append(ParsedResponse(source, as_str(obj["response"], "response")))
    criteria = [
        _generic_criterion(item, f"rubric[{i}]")
        for i, item in enumerate(as_list(obj.get("rubric") or [], "rubric"))
    ]
    reference = obj.get("reference_answer")
    explicit = obj.get("metadata")
    known = ("id", "external_id", "prompt", "messages", "responses", "response", "source")
    metadata = rest(obj, (*known, "reference_answer", "metadata", "rubric", "preference"))
    metadata.update({} if explicit is None else as_dict(explicit, "metadata"))
    preference = obj.get("preference")
    return ParsedRecord(
        line=line,
        external_id=external_id(obj, ("external_id", "id"), messages),
        messages=messages,
        reference_answer="" if reference is None else as_str(reference, "reference_answer"),
        metadata=with_rubric_items(metadata, criteria),
        responses=responses,
        criteria=criteria,
        preference=None if preference is None else _preference(preference, len(responses)),
    )


def parse_csv_row(row: Mapping[str | None, Any], line: int) -> ParsedRecord:
    """A csv.DictReader row: ``prompt`` plus optional id/reference_answer/response/source;
    any other non-blank column goes into metadata. Cells are kept as they are (a blank
    cell counts as absent)."""
    if row.get(None):
        raise InvalidRecord("row has more fields than the header")
    values = {k: v or "" for k, v in row.items() if k is not None}
    prompt = values.pop("prompt", "")
    if not prompt.strip():
        raise InvalidRecord("missing field 'prompt'")
    messages = [{"role": "user", "content": prompt}]
    record_id = values.pop("id", "")
    reference = values.pop("reference_answer", "")
    response = values.pop("response", "")
    source = as_source(values.pop("source", "").strip(), "source", "imported")
    return ParsedRecord(
        line=line,
        external_id=external_id({"id": record_id}, ("id",), messages),
        messages=messages,
        reference_answer=reference if reference.strip() else "",
        metadata={k: v for k, v in values.items() if v.strip()},
        responses=[ParsedResponse(source, response)] if response.strip() else [],
    )
