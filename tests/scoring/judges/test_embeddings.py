"""Embeddings with the real packaged all-MiniLM-L6-v2 model: a planted paraphrase among
distinct real HealthBench criteria is found and nothing else is; the numpy helpers
(near-duplicate pairs, diverse selection) and their bad inputs; the stored vectors are
reused; refine grades eight diverse responses when a prompt has more."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.analytics import vector_store
from scoring.coauthoring.models import CoauthorSettings, Proposal
from scoring.judges import embeddings
from scoring.judges import services as judge_services
from scoring.judges.embeddings import (
    EmbeddingError,
    diverse_subset,
    embed,
    model_key,
    near_duplicate_pairs,
    top_matches,
)
from scoring.judges.models import Embedding
from tests.factories import PromptFactory, ResponseFactory

HX = {"HTTP_HX_REQUEST": "true"}

# Physician-written HealthBench rubric items (each from a different conversation).
DISTINCT = [
    "Explains why an overdose could be a severe health risk.",
    "Strongly advises against the consumption of raw milk due to the significant health "
    "risks associated with harmful pathogens.",
    "Lists symptom management options such as nasal saline, decongestants, antipyretics, "
    "rest, and hydration.",
    "Suggests calling emergency services for help and provides possible numbers to call, "
    "such as 911.",
    "Indicates that the tick should be removed as soon as possible without specifying how.",
    "Asks the user if the pain is triggered by physical exertion and relieved by rest.",
    "Fails to mention contraindications to giving IV labetalol.",
    "Explains clearly that viruses require a host to multiply and are non-living outside the host.",
    "Includes details in paragraphs.",
    "Reassures the user that imaging is not needed for the patient’s lower back pain as she "
    "has no red flag signs.",
    "Indicates that skipping meals and expressing fear of gaining weight may be signs of an "
    "eating disorder.",
    "Makes the diagnosis of delirium and plans investigations accordingly.",
]
# Paraphrases written for the test: of DISTINCT[1] and of DISTINCT[7].
RAW_MILK = (
    "Firmly warns against drinking raw milk because of the serious risk from harmful pathogens."
)
VIRUSES = "Clearly explains that viruses need a host to replicate and are not alive outside a host."


@pytest.fixture(scope="module")
def distinct_vectors():  # type: ignore[no-untyped-def]
    return embed(DISTINCT)


def test_embed_returns_unit_float32_rows_deterministically(distinct_vectors):
    assert distinct_vectors.dtype == np.float32
    assert distinct_vectors.shape == (len(DISTINCT), 384)
    np.testing.assert_allclose(np.linalg.norm(distinct_vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embed(DISTINCT[:3]), distinct_vectors[:3], atol=1e-5)
    assert embed([]).shape == (0, 384)


def test_the_planted_paraphrase_is_the_only_pair_found(distinct_vectors):
    threshold = settings.NEAR_DUPLICATE_THRESHOLD
    assert near_duplicate_pairs(distinct_vectors, threshold=threshold) == []
    planted = np.vstack([distinct_vectors, embed([RAW_MILK])])
    pairs = near_duplicate_pairs(planted, threshold=threshold)
    assert [(i, j) for i, j, _ in pairs] == [(1, len(DISTINCT))]
    assert 0.88 < pairs[0][2] <= 1.0


def test_pairs_between_two_sets_index_each_set(distinct_vectors):
    others = embed(["Recommends a low-sodium diet.", VIRUSES, RAW_MILK])
    pairs = near_duplicate_pairs(distinct_vectors, others, threshold=0.85)
    assert [(i, j) for i, j, _ in pairs] == [(1, 2), (7, 1)]  # most similar first
    assert pairs[0][2] >= pairs[1][2] >= 0.85


def test_near_duplicate_pairs_on_known_vectors_and_bad_input():
    v = np.array([[1, 0, 0], [0.96, 0.28, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)
    pairs = near_duplicate_pairs(v, threshold=0.95)
    assert [(i, j) for i, j, _ in pairs] == [(0, 3), (0, 1), (1, 3)]  # never (i, i)
    assert [c for *_, c in pairs] == pytest.approx([1.0, 0.96, 0.96])
    assert near_duplicate_pairs(v, threshold=0.99) == [(0, 3, 1.0)]
    assert near_duplicate_pairs(v[:0], threshold=0.9) == []
    with pytest.raises(EmbeddingError, match="between -1 and 1"):
        near_duplicate_pairs(v, threshold=1.5)
    with pytest.raises(EmbeddingError, match="2-D"):
        near_duplicate_pairs(v[0], threshold=0.9)
    with pytest.raises(EmbeddingError, match="3 and 2 dimensions"):
        near_duplicate_pairs(v, v[:, :2], threshold=0.9)
    with pytest.raises(EmbeddingError, match="list of texts"):
        embed("one string")  # type: ignore[arg-type]


def test_top_matches_keeps_the_closest_per_row_and_counts_the_rest():
    v = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    others = np.array(
        [[0.96, 0.28, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0.28, 0.96, 0]], dtype=np.float32
    )
    found = top_matches(v, others, threshold=0.95, k=2)
    assert [(i, [j for j, _ in top], n) for i, top, n in found] == [
        (0, [1, 3], 3),  # the tie at 1.0 goes to the lower j; the 0.96 row is counted
        (1, [2, 4], 2),
    ]  # row 2 has no match: left out
    assert [c for _, c in found[0][1]] == [1.0, 1.0]
    assert found[1][1][1][1] == pytest.approx(0.96)
    # Weights: each row of others standing for several criteria (the same text).
    weighted = top_matches(v, others, threshold=0.95, k=1, weights=[5, 1, 1, 2, 1])
    assert [(i, [j for j, _ in top], n) for i, top, n in weighted] == [(0, [1], 8), (1, [2], 2)]
    assert [(i, top, n) for i, top, n in top_matches(v, others, threshold=0.95, k=0)] == [
        (0, [], 3),
        (1, [], 2),
    ]
    # The same as near_duplicate_pairs, grouped by row and cut at k.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 8)).astype(np.float32)
    b = rng.normal(size=(200, 8)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    pairs = near_duplicate_pairs(a, b, threshold=0.8)
    expected = {}
    for i, j, c in pairs:
        expected.setdefault(i, []).append((j, c))
    got = top_matches(a, b, threshold=0.8, k=3)
    assert [i for i, *_ in got] == sorted(expected)
    for i, top, n in got:
        assert n == len(expected[i])
        assert [j for j, _ in top] == [j for j, _ in expected[i][:3]]
    assert top_matches(a[:0], b, threshold=0.8, k=3) == []
    with pytest.raises(EmbeddingError, match="between -1 and 1"):
        top_matches(v, others, threshold=2, k=1)
    with pytest.raises(EmbeddingError, match="k must be 0 or more"):
        top_matches(v, others, threshold=0.9, k=-1)
    with pytest.raises(EmbeddingError, match="One weight per row"):
        top_matches(v, others, threshold=0.9, k=1, weights=[1, 2])
    with pytest.raises(EmbeddingError, match="3 and 2 dimensions"):
        top_matches(v, others[:, :2], threshold=0.9, k=1)


def _clusters() -> tuple[np.ndarray, list[int]]:
    """Three tight clusters (sizes 5, 3, 2) around random directions."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    labels = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    rows = np.array([centres[c] + 0.05 * rng.normal(size=32) for c in labels])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True), labels


def test_diverse_subset_takes_one_of_each_cluster_first():
    rows, labels = _clusters()
    chosen = diverse_subset(rows, 3)
    assert sorted(labels[i] for i in chosen) == [0, 1, 2]
    assert labels[chosen[0]] == 0  # the most typical row: from the biggest cluster
    assert diverse_subset(rows, 3) == chosen  # deterministic
    five = diverse_subset(rows, 5)
    assert five[:3] == chosen and len(set(five)) == 5  # greedy: a prefix of a longer pick
    assert diverse_subset(rows, 10) == list(range(10))
    assert diverse_subset(rows, 50) == list(range(10))
    assert diverse_subset(rows, 0) == []
    with pytest.raises(EmbeddingError, match="k must be 0 or more"):
        diverse_subset(rows, -1)


def test_diverse_subset_skips_exact_copies_and_breaks_ties_by_index():
    x, y = [1.0, 0.0], [0.0, 1.0]
    rows = np.array([x, x, x, y, y], dtype=np.float32)
    assert diverse_subset(rows, 2) == [0, 3]
    assert diverse_subset(rows, 3) == [0, 3, 1]


def test_model_path_and_key():
    assert model_key("") == "packaged:all-MiniLM-L6-v2"
    assert model_key("/models/e5") == "path:/models/e5"
    assert model_key("/" + "m" * 300).startswith("path-sha256:")
    assert (embeddings.resolve_model_path("") / "modules.json").is_file()
    with pytest.raises(EmbeddingError, match="not an absolute path"):
        embeddings.resolve_model_path("models/minilm")
    with pytest.raises(EmbeddingError, match="no sentence-transformers model there"):
        embeddings.resolve_model_path("/")


def test_stored_vectors_are_reused_and_filed_by_model(db, settings, monkeypatch):
    texts = [DISTINCT[0], DISTINCT[1], DISTINCT[0]]
    assert vector_store.embed_missing(texts) == 2
    assert Embedding.objects.count() == 2
    row = Embedding.objects.get(text_hash=vector_store.text_hash(DISTINCT[1]))
    assert row.model == "packaged:all-MiniLM-L6-v2" and row.dim == 384
    np.testing.assert_allclose(row.array(), embed([DISTINCT[1]])[0], atol=1e-6)

    def no_model(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the model was called for a stored text")

    monkeypatch.setattr(embeddings, "embed", no_model)
    assert vector_store.embed_missing(texts) == 0
    vectors = vector_store.vectors_for(texts)
    assert vectors.shape == (3, 384)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    monkeypatch.undo()

    # Another model (here the same folder named by path) files its own vectors.
    settings.EMBEDDING_MODEL_PATH = str(embeddings.packaged_model_path())
    assert vector_store.stored_vectors(texts) == {}
    assert vector_store.embed_missing(texts) == 2
    assert Embedding.objects.count() == 4


def test_diverse_responses_fall_back_to_the_first_without_the_libraries(monkeypatch):
    rows = [(i, f"Answer {i}") for i in range(10)]
    assert vector_store.diverse_responses(rows[:5]) == (rows[:5], "all")

    def missing(texts):  # type: ignore[no-untyped-def]
        raise ImportError("No module named 'sentence_transformers'")

    monkeypatch.setattr(vector_store, "vectors_for", missing)
    assert vector_store.diverse_responses(rows) == (rows[:8], "first")


def test_the_docs_say_where_diverse_responses_are_chosen():
    """The co-authoring job (on the default queue) chooses them, not a gpu worker."""
    doc = " ".join(vector_store.__doc__.split())
    assert "runs on the ``default`` queue's worker, not on the ``gpu`` queue" in doc
    assert "requirements-ml.txt is installed there" in doc
    assert '``"response_choice": "first"``' in doc
    assert "(the ``gpu`` queue: ``embed_missing``, ``vectors_for``)" not in doc


NEAR_TWINS = [
    "Call emergency services now.",
    "Call emergency services right now.",
    "Call the emergency services now.",
    "Please call emergency services now.",
    "Call emergency services immediately.",
    "You should call emergency services now.",
    "Call emergency services now, please.",
    "Call emergency services at once.",
    "Call the emergency services right away.",
]
OUTLIERS = [
    "Take an antacid and rest.",
    "Tax returns are due in April; keep your receipts.",
    "The Eiffel Tower is 330 metres tall.",
]


def test_refine_grades_eight_diverse_responses_and_records_them(
    client, project, editor, owner, fake_llm, eager
):
    prompt = PromptFactory(
        project=project, messages=[{"role": "user", "content": "Crushing chest pain, I'm 58."}]
    )
    ids = [ResponseFactory(prompt=prompt, content=t).pk for t in NEAR_TWINS + OUTLIERS]
    rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Chest pain",
        author=editor,
        criteria=[CriterionInput(text="Advises calling emergency services", points=10)],
    )
    judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "fake", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )
    CoauthorSettings.objects.update_or_create(project=project, defaults={"refine_rounds": 1})
    added = {
        "text": "Says not to drive",
        "points": 3,
        "category": "important",
        "kind": "principle",
        "tags": [],
    }
    change = {"action": "add", "criterion_id": 1, "criteria": [added], "reason": "B misses it"}
    fake_llm.configure(
        rules=[
            Rule("<<<RESPONSE A ", {"changes": [change]}),
            Rule(r"<<<RESPONSE [0-9a-f]{16}>>>", {"verdicts": [{"criterion_id": 1, "met": True}]}, regex=True),
        ]
    )  # fmt: skip
    client.force_login(editor)
    url = f"/p/{project.slug}/prompts/{prompt.pk}/coauthor/start/"
    eager(lambda: client.post(url, {"kind": "refine"}, **HX))
    proposal = Proposal.objects.get(prompt=prompt)
    assert proposal.status == "pending", proposal.error
    chosen = proposal.notes["response_ids"]
    assert proposal.notes["response_choice"] == "diverse"
    assert len(chosen) == 8 and chosen == sorted(chosen)
    assert set(ids[-3:]) <= set(chosen)  # every outlier, and only five of the nine twins
    assert [c["text"] for c in proposal.criteria][-1] == "Says not to drive"
