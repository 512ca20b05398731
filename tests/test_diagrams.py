"""The diagrams draw what they say: every token, every head, the shapes in the course's letters."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bertedu.diagrams import DIAGRAMS, input_embeddings_diagram, multi_head_attention_diagram  # noqa: E402


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("name", DIAGRAMS)
def test_every_diagram_draws_and_names_its_shapes(name, tmp_path):
    fig = DIAGRAMS[name]()
    assert fig.axes[0].get_title()
    assert any("(B, T, H)" in t or "(B, T)" in t for t in texts(fig)), texts(fig)
    fig.savefig(tmp_path / "diagram.png")
    assert (tmp_path / "diagram.png").stat().st_size > 5_000
    plt.close(fig)


def test_input_embeddings_show_every_token_position_and_segment():
    fig = input_embeddings_diagram(["[CLS]", "not", "good", "[SEP]", "meh", "[SEP]"])
    drawn = texts(fig)
    assert [t for t in drawn if t.startswith("P[")] == [f"P[{i}]" for i in range(6)]
    assert [t for t in drawn if t.startswith("S[")] == ["S[A]"] * 4 + ["S[B]"] * 2
    assert "E[good]" in drawn
    plt.close(fig)
    with pytest.raises(ValueError, match="one per token"):
        input_embeddings_diagram(["[CLS]", "a"], segments=[0])


def test_attention_diagram_draws_one_box_per_head():
    fig = multi_head_attention_diagram(num_heads=4)
    assert sum(t.startswith("head ") for t in texts(fig)) == 4
    plt.close(fig)
