"""bertedu.classification: the head against transformers, checkpoints in and out, the scores."""
import numpy as np
import pytest
import torch
import transformers
from sklearn import metrics

from bertedu.checkpoint import default_checkpoint
from bertedu.classification import (
    CLASSIFIER_NAME,
    BertForSequenceClassification,
    ClassifierInfo,
    load_classifier,
    save_classifier,
)
from bertedu.metrics import classification_scores, confusion_matrix
from bertedu.viz import plot_confusion_matrix
from bertedu.model import BertConfig, BertModel
from bertedu.pretraining import BertForPreTraining

TINY = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)


def tiny_classifier(num_labels=2, seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(**TINY), num_labels).eval()


def padded_batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, TINY["vocab_size"], (3, 12), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 8:] = 0
    attention_mask[2, 5:] = 0
    return input_ids * attention_mask, attention_mask


def test_matches_transformers_logits_loss_and_attention(tmp_path):
    ours = tiny_classifier(num_labels=3)
    ours.save_pretrained(tmp_path, ["bad", "meh", "good"])
    reference = transformers.BertForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert reference.config.id2label == {0: "bad", 1: "meh", 2: "good"}
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        a = ours(input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
        b = reference(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    assert a.logits.shape == (3, 3)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.loss, b.loss)
    for layer_a, layer_b in zip(a.attentions, b.attentions):
        torch.testing.assert_close(layer_a, layer_b)


def test_transformers_classifier_folder_loads_with_its_head_and_labels(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    reference = transformers.BertForSequenceClassification(config).eval()
    reference.save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("".join(f"t{i}\n" for i in range(TINY["vocab_size"])))
    model, info = load_classifier(tmp_path)
    assert info.labels == ["neg", "pos"]
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids, attention_mask=attention_mask).logits,
                                   reference(input_ids=input_ids, attention_mask=attention_mask).logits)


def test_loss_is_cross_entropy_and_gradients_reach_encoder_and_head():
    model = tiny_classifier().train()
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([1, 0, 1])
    torch.manual_seed(3)
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    out.loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    assert model.bert.pooler.dense.weight.grad.abs().sum() > 0


def test_head_reads_the_pooled_cls_vector_only():
    model = tiny_classifier()
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        pooled = model.bert(input_ids, attention_mask=attention_mask).pooler_output
        torch.testing.assert_close(model(input_ids, attention_mask=attention_mask).logits, model.classifier(pooled))


def test_wrong_label_shape_and_too_few_classes_are_explained():
    model = tiny_classifier()
    input_ids, _ = padded_batch()
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        model(input_ids, labels=torch.zeros(3, 12, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2"):
        BertForSequenceClassification(BertConfig(**TINY), num_labels=1)


def test_from_encoder_and_pretraining_folders_loads_the_encoder_and_a_fresh_head(tmp_path):
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(**TINY))
    encoder.save_pretrained(tmp_path / "encoder")
    pretraining = BertForPreTraining(BertConfig(**TINY))
    pretraining.save_pretrained(tmp_path / "pretraining")
    for folder, source in ((tmp_path / "encoder", encoder), (tmp_path / "pretraining", pretraining.bert)):
        model = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
        for name, value in source.state_dict().items():
            torch.testing.assert_close(model.bert.state_dict()[name], value, msg=name)
        assert model.classifier.weight.std() < 0.05  # BERT's init, N(0, 0.02^2)
        assert not model.training


def test_saved_classifier_round_trips_and_keeps_its_marker(tmp_path):
    model = tiny_classifier(seed=5)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"t{i}\n" for i in range(TINY["vocab_size"])))
    info = ClassifierInfo(max_length=64, head_tokens=16, base_checkpoint="tiny", metrics={"test_accuracy": 0.5})
    folder = save_classifier(model, tmp_path / "saved", vocab, info)
    assert sorted(p.name for p in folder.iterdir()) == sorted([CLASSIFIER_NAME, "config.json", "model.safetensors", "vocab.txt"])
    loaded, loaded_info = load_classifier(folder)
    assert loaded_info == info
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids, attention_mask=attention_mask).logits,
                                   model(input_ids, attention_mask=attention_mask).logits)


def test_a_folder_without_a_head_gets_a_clear_error(tmp_path):
    BertModel(BertConfig(**TINY)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="without a classification head.*bertedu finetune"):
        load_classifier(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_classifier(tmp_path / "nowhere")


def test_embedded_checkpoint_matches_transformers():
    ours = BertForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    reference = transformers.BertForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2).eval()
    reference.classifier.load_state_dict(ours.classifier.state_dict())  # the head is new in both
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 30000, (2, 40), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 30:] = 0
    with torch.no_grad():
        torch.testing.assert_close(ours(input_ids, attention_mask=attention_mask).logits,
                                   reference(input_ids=input_ids, attention_mask=attention_mask).logits,
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    predictions = np.where(rng.random(300) < 0.8, labels, 1 - labels)
    scores = classification_scores(labels, predictions)
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(labels, predictions, zero_division=0)
    assert scores.accuracy == pytest.approx(metrics.accuracy_score(labels, predictions))
    assert list(scores.precision.values()) == pytest.approx(precision)
    assert list(scores.recall.values()) == pytest.approx(recall)
    assert list(scores.f1.values()) == pytest.approx(f1)
    assert scores.macro_f1 == pytest.approx(metrics.f1_score(labels, predictions, average="macro"))
    np.testing.assert_array_equal(scores.matrix, metrics.confusion_matrix(labels, predictions))
    assert scores.row()["macro_f1"] == scores.macro_f1


def test_scores_when_one_class_is_never_predicted():
    scores = classification_scores([0, 0, 1, 1], [1, 1, 1, 1])
    assert scores.accuracy == 0.5
    assert scores.precision["negative"] == 0.0 and scores.recall["negative"] == 0.0
    assert scores.f1["positive"] == pytest.approx(2 / 3)
    assert "macro avg" in scores.report()
    with pytest.raises(ValueError, match="4 labels but 3 predictions"):
        confusion_matrix([0, 1, 1, 0], [0, 1, 1])


def test_confusion_matrix_plot_shows_counts_and_row_shares():
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_confusion_matrix(np.array([[40, 10], [5, 45]]))
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["40\n80.0%", "10\n20.0%", "5\n10.0%", "45\n90.0%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["negative", "positive"]
