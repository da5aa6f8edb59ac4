"""`vlengine convert-checkpoint`: published VL-BERT, UNITER and LXMERT state dicts -> engine exports.

Each checkpoint is built here with its codebase's real key names and consistent shapes (2-3 layers,
hidden 64, real feature and class sizes), saved as that codebase saves it, converted through the
command, and loaded with ``load_export``; values are compared tensor by tensor.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from vlengine.cli import main as vlengine_main
from vlengine.models.export import load_export, read_export
from vlengine.models.geometry import box_geometry_embedding

H, FFN, VOCAB, POSITIONS = 64, 128, 50, 40
GEN = torch.Generator().manual_seed(7)


def rand(*shape):
    return torch.randn(*shape, generator=GEN)


def layer_norm(prefix: str) -> dict:
    return {f"{prefix}.weight": 1 + rand(H) * 0.1, f"{prefix}.bias": rand(H)}


def linear(prefix: str, out: int, inp: int) -> dict:
    return {f"{prefix}.weight": rand(out, inp), f"{prefix}.bias": rand(out)}


def bert_layer(prefix: str, attention: str = "attention.self", attention_out: str = "attention.output") -> dict:
    """BERT's layer names (pytorch_pretrained_bert / HF): used by all three codebases."""
    state = {}
    for name in ("query", "key", "value"):
        state.update(linear(f"{prefix}.{attention}.{name}", H, H))
    state.update(linear(f"{prefix}.{attention_out}.dense", H, H))
    state.update(layer_norm(f"{prefix}.{attention_out}.LayerNorm"))
    state.update(linear(f"{prefix}.intermediate.dense", FFN, H))
    state.update(linear(f"{prefix}.output.dense", H, FFN))
    state.update(layer_norm(f"{prefix}.output.LayerNorm"))
    return state


def bert_embeddings(prefix: str, segments: int) -> dict:
    return {f"{prefix}.word_embeddings.weight": rand(VOCAB, H), f"{prefix}.position_embeddings.weight":
            rand(POSITIONS, H), f"{prefix}.token_type_embeddings.weight": rand(segments, H),
            **layer_norm(f"{prefix}.LayerNorm")}


def mlm_head(prefix: str, words: torch.Tensor) -> dict:
    return {**linear(f"{prefix}.transform.dense", H, H), **layer_norm(f"{prefix}.transform.LayerNorm"),
            f"{prefix}.bias": rand(VOCAB), f"{prefix}.decoder.weight": words}   # tied, as nn.Linear shares it


def vlbert_state() -> dict:
    """ResNetVLBERTForPretrainingMultitask, end to end (ResNet keys present), without pooler (with_pooler: false)."""
    s = {"vlbert.word_embeddings.weight": rand(VOCAB, H), "vlbert.end_embedding.weight": rand(1, H),
         "vlbert.position_embeddings.weight": rand(POSITIONS, H),
         "vlbert.token_type_embeddings.weight": rand(3, H),
         **layer_norm("vlbert.embedding_LayerNorm"), **layer_norm("vlbert.visual_ln_text"),
         **layer_norm("vlbert.visual_ln_object")}
    for i in range(2):
        s.update(bert_layer(f"vlbert.encoder.layer.{i}"))
    s.update(mlm_head("vlbert.mlm_head.predictions", s["vlbert.word_embeddings.weight"]))
    s.update(linear("vlbert.mvrc_head.transform.dense", H, H))
    s.update(linear("vlbert.mvrc_head.region_cls_pred", 1601, H))
    s.update({"object_linguistic_embeddings.weight": rand(1, H), "object_mask_visual_embedding.weight":
              rand(1, 2048), "object_mask_word_embedding.weight": rand(1, H),
              "aux_text_visual_embedding.weight": rand(1, H)})
    s.update(linear("image_feature_extractor.obj_downsample.1", H, 4096))
    s.update({"image_feature_extractor.backbone.conv1.weight": rand(64, 3, 7, 7),
              "image_feature_extractor.roi_head_feature_extractor.0.conv1.weight": rand(512, 1024, 1, 1)})
    s["image_feature_extractor.head.0.0.conv1.weight"] = \
        s["image_feature_extractor.roi_head_feature_extractor.0.conv1.weight"]
    return s


def uniter_state() -> dict:
    """UniterForPretraining.state_dict() (utils/save.py): plain, ``uniter.`` backbone."""
    s = bert_embeddings("uniter.embeddings", 2)
    s.update({**linear("uniter.img_embeddings.img_linear", H, 2048),
              **layer_norm("uniter.img_embeddings.img_layer_norm"),
              **layer_norm("uniter.img_embeddings.pos_layer_norm"), **linear("uniter.img_embeddings.pos_linear", H, 7),
              "uniter.img_embeddings.mask_embedding.weight": rand(2, 2048),
              **layer_norm("uniter.img_embeddings.LayerNorm")})
    for i in range(2):
        s.update(bert_layer(f"uniter.encoder.layer.{i}"))
    s.update(linear("uniter.pooler.dense", H, H))
    s.update(mlm_head("cls.predictions", s["uniter.embeddings.word_embeddings.weight"]))
    s.update({**linear("feat_regress.net.0", H, H), **layer_norm("feat_regress.net.2"),
              "feat_regress.weight": s["uniter.img_embeddings.img_linear.weight"], "feat_regress.bias": rand(2048)})
    s.update({**linear("region_classifier.net.0", H, H), **layer_norm("region_classifier.net.2"),
              **linear("region_classifier.net.3", 1601, H), **linear("itm_output", 2, H)})
    return s


def lxmert_state() -> dict:
    """LXRTPretraining (3 language, 1 relationship, 1 cross-modality layer), saved DataParallel-wrapped."""
    s = bert_embeddings("bert.embeddings", 2)
    v = "bert.encoder.visn_fc."
    s.update({**linear(v + "visn_fc", H, 2048), **layer_norm(v + "visn_layer_norm"), **linear(v + "box_fc", H, 4),
              **layer_norm(v + "box_layer_norm")})
    for i in range(3):
        s.update(bert_layer(f"bert.encoder.layer.{i}"))
    s.update(bert_layer("bert.encoder.r_layers.0"))
    x = "bert.encoder.x_layers.0."
    for name in ("query", "key", "value"):
        s.update(linear(x + f"visual_attention.att.{name}", H, H))
    s.update({**linear(x + "visual_attention.output.dense", H, H),
              **layer_norm(x + "visual_attention.output.LayerNorm")})
    for stream in ("lang", "visn"):
        for name in ("query", "key", "value"):
            s.update(linear(x + f"{stream}_self_att.self.{name}", H, H))
        s.update({**linear(x + f"{stream}_self_att.output.dense", H, H),
                  **layer_norm(x + f"{stream}_self_att.output.LayerNorm"),
                  **linear(x + f"{stream}_inter.dense", FFN, H), **linear(x + f"{stream}_output.dense", H, FFN),
                  **layer_norm(x + f"{stream}_output.LayerNorm")})
    s.update(linear("bert.pooler.dense", H, H))
    s.update(mlm_head("cls.predictions", s["bert.embeddings.word_embeddings.weight"]))
    s.update(linear("cls.seq_relationship", 2, H))
    s.update({**linear("obj_predict_head.transform.dense", H, H), **layer_norm("obj_predict_head.transform.LayerNorm"),
              **linear("obj_predict_head.decoder_dict.obj", 1600, H),
              **linear("obj_predict_head.decoder_dict.attr", 400, H),
              **linear("obj_predict_head.decoder_dict.feat", 2048, H)})
    s.update({**linear("answer_head.logit_fc.0", 2 * H, H), "answer_head.logit_fc.2.weight": rand(2 * H),
              "answer_head.logit_fc.2.bias": rand(2 * H), **linear("answer_head.logit_fc.3", 16, 2 * H)})
    return s


def module_prefixed(state: dict) -> dict:
    return {f"module.{k}": v for k, v in state.items()}


def convert(codebase: str, saved, tmp_path, capsys):
    src, out, report = tmp_path / "published.pt", tmp_path / "out.safetensors", tmp_path / "report.json"
    torch.save(saved, src)
    code = vlengine_main(["convert-checkpoint", "--from", codebase, str(src), str(out), "--report", str(report)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    _, tensors = read_export(str(out))
    return load_export(str(out)), tensors, json.loads(report.read_text()), printed.out


def qkv(state: dict, prefix: str, kind: str) -> torch.Tensor:
    return torch.cat([state[f"{prefix}.{p}.{kind}"] for p in ("query", "key", "value")])


def test_vlbert_checkpoint_maps_onto_vlbert(tmp_path, capsys):
    state = vlbert_state()
    saved = {"state_dict": module_prefixed(state), "epoch": 9,
             "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0, 1]}]}}
    model, tensors, report, printed = convert("vlbert", saved, tmp_path, capsys)
    params = dict(model.named_parameters())
    assert type(model).__name__ == "VLBert"
    assert (model.config.num_layers, model.config.hidden_size, model.config.num_heads) == (2, 64, 1)
    assert torch.equal(params["encoder.layers.1.attention.qkv.weight"],
                       qkv(state, "vlbert.encoder.layer.1.attention.self", "weight"))
    assert torch.equal(params["encoder.layers.0.ffn_norm.bias"], state["vlbert.encoder.layer.0.output.LayerNorm.bias"])
    assert torch.equal(params["embeddings.word_embeddings.weight"], state["vlbert.word_embeddings.weight"])
    assert torch.equal(params["embeddings.token_type_embeddings.weight"], state["vlbert.token_type_embeddings.weight"])
    assert torch.equal(params["embeddings.LayerNorm.weight"], state["vlbert.embedding_LayerNorm.weight"])
    assert torch.equal(params["visual_ln_region.bias"], state["vlbert.visual_ln_object.bias"])
    assert torch.equal(params["end_token"], state["vlbert.end_embedding.weight"][0])
    assert torch.equal(params["region_token"], state["object_linguistic_embeddings.weight"][0])
    assert torch.equal(params["mask_region_feature"], state["object_mask_visual_embedding.weight"][0])
    assert torch.equal(params["text_only_visual"], state["aux_text_visual_embedding.weight"][0])
    # obj_downsample reads cat(geometry, appearance); the engine's projection reads cat(appearance, geometry)
    model.eval()
    boxes, size = torch.tensor([[[4.0, 6.0, 50.0, 70.0]]]), torch.tensor([[100.0, 120.0]])
    appearance = rand(1, 1, 2048)
    published = torch.relu(F.linear(torch.cat((box_geometry_embedding(boxes, size), appearance), -1),
                                    state["image_feature_extractor.obj_downsample.1.weight"],
                                    state["image_feature_extractor.obj_downsample.1.bias"]))
    torch.testing.assert_close(model.region_projection(appearance, boxes, size), published, rtol=1e-4, atol=1e-4)
    assert torch.equal(tensors["mlm.transform.dense.weight"],
                       state["vlbert.mlm_head.predictions.transform.dense.weight"])
    assert torch.equal(tensors["mlm.bias"], state["vlbert.mlm_head.predictions.bias"])
    assert torch.equal(tensors["mrc.classifier.weight"], state["vlbert.mvrc_head.region_cls_pred.weight"])
    assert "itm.classifier.weight" not in tensors          # the released configs train no relation head

    assert report["mapped"]["vlbert.encoder.layer.1.attention.self.key.weight"] == \
        ["model.encoder.layers.1.attention.qkv.weight[64:128]"]
    assert "ResNet" in report["unmapped"]["image_feature_extractor.backbone.conv1.weight"]
    assert "ResNet" in report["unmapped"]["image_feature_extractor.head.0.0.conv1.weight"]
    assert "object_mask_word_embedding.weight" in report["unmapped"]
    assert report["tied"] == {"vlbert.mlm_head.predictions.decoder.weight": "model.embeddings.word_embeddings.weight"}
    assert {"model.pooler.dense.weight", "mrc.transform.LayerNorm.weight"} <= set(report["fresh"])
    assert "unmapped (3): the ResNet image feature extractor" in printed


def test_uniter_checkpoint_maps_text_encoder_pooler_and_heads(tmp_path, capsys):
    state = uniter_state()
    model, tensors, report, printed = convert("uniter", state, tmp_path, capsys)
    params = dict(model.named_parameters())
    assert type(model).__name__ == "VLBert" and model.config.region_feature_size == 2048
    assert torch.equal(params["encoder.layers.0.attention.qkv.bias"],
                       qkv(state, "uniter.encoder.layer.0.attention.self", "bias"))
    assert torch.equal(params["encoder.layers.1.attention_norm.weight"],
                       state["uniter.encoder.layer.1.attention.output.LayerNorm.weight"])
    assert torch.equal(params["pooler.dense.weight"], state["uniter.pooler.dense.weight"])
    segments = state["uniter.embeddings.token_type_embeddings.weight"]
    assert torch.equal(params["embeddings.token_type_embeddings.weight"], segments[[0, 1, 1]])
    assert torch.equal(tensors["regression.regressor.weight"], state["uniter.img_embeddings.img_linear.weight"].t())
    assert torch.equal(tensors["mrc.transform.LayerNorm.weight"], state["region_classifier.net.2.weight"])
    assert torch.equal(tensors["itm.classifier.bias"], state["itm_output.bias"])

    assert "7-d box position" in report["unmapped"]["uniter.img_embeddings.pos_linear.weight"]
    assert "image embedding" in report["unmapped"]["uniter.img_embeddings.img_linear.weight"]
    assert {"model.region_projection.linear.weight", "model.region_token"} <= set(report["fresh"])
    assert not [k for k, why in report["unmapped"].items() if not k.startswith("uniter.img_embeddings.")]
    assert "7-d box position" in printed


def test_lxmert_checkpoint_maps_language_layers_onto_semvlp(tmp_path, capsys):
    state = lxmert_state()
    model, tensors, report, _ = convert("lxmert", module_prefixed(state), tmp_path, capsys)
    params = dict(model.named_parameters())
    assert type(model).__name__ == "SemVLP" and model.config.num_layers == 3
    assert torch.equal(params["encoder.layers.2.attention.qkv.weight"],
                       qkv(state, "bert.encoder.layer.2.attention.self", "weight"))
    assert torch.equal(params["encoder.layers.2.ffn.intermediate.weight"],
                       state["bert.encoder.layer.2.intermediate.dense.weight"])
    assert torch.equal(params["embeddings.position_embeddings.weight"],
                       state["bert.embeddings.position_embeddings.weight"])
    assert torch.equal(params["pooler.dense.bias"], state["bert.pooler.dense.bias"])
    for head in ("mrc", "regression"):   # LXMERT's one object-head transform starts both engine heads
        assert torch.equal(tensors[f"{head}.transform.dense.weight"], state["obj_predict_head.transform.dense.weight"])
    assert torch.equal(tensors["mrc.classifier.weight"], state["obj_predict_head.decoder_dict.obj.weight"])
    assert torch.equal(tensors["itm.classifier.weight"], state["cls.seq_relationship.weight"])

    assert "cross-modality" in report["unmapped"]["bert.encoder.x_layers.0.visual_attention.att.query.weight"]
    assert "relationship" in report["unmapped"]["bert.encoder.r_layers.0.attention.self.query.weight"]
    assert "answer_head.logit_fc.3.weight" in report["unmapped"]
    assert {"model.encoder.layers.2.cross_attention.query.weight", "model.image_embeddings.projection.weight",
            "model.embeddings.token_type_embeddings.weight[2:3]"} <= set(report["fresh"])


class _Payload:
    """Unpickling this would call `_ran_code`: a weights-only reader must refuse the file instead."""
    def __reduce__(self):
        return (_ran_code, ())


RAN = []


def _ran_code():
    RAN.append(True)
    return {}


def run_cli(args, capsys):
    code = vlengine_main(["convert-checkpoint", *args])
    return code, capsys.readouterr().err.strip().splitlines()


def test_a_pickle_holding_code_is_refused_without_running_it(tmp_path, capsys):
    src = tmp_path / "vl-bert-base-e2e.model"
    torch.save({"state_dict": module_prefixed(vlbert_state()), "trainer": _Payload()}, src)
    code, err = run_cli(["--from", "vlbert", str(src), str(tmp_path / "out.safetensors")], capsys)
    assert code == 2 and len(err) == 1, err
    assert str(src) in err[0] and "GLOBAL test_published_checkpoints._ran_code" in err[0]
    assert "never unpickles code" in err[0]
    assert not RAN and not (tmp_path / "out.safetensors").exists()


def test_user_mistakes_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "out.safetensors")
    code, err = run_cli(["--from", "vlbert", str(tmp_path / "missing.model"), out], capsys)
    assert code == 2 and len(err) == 1 and "missing.model: no such file" in err[0], err

    uniter = tmp_path / "uniter-base.pt"
    torch.save(uniter_state(), uniter)
    code, err = run_cli(["--from", "lxmert", str(uniter), out], capsys)
    assert code == 2 and len(err) == 1 and "does not look like a LXMERT checkpoint" in err[0], err

    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    code, err = run_cli(["--from", "uniter", str(listing), out], capsys)
    assert code == 2 and len(err) == 1 and "holds list, not a state dict" in err[0], err

    with pytest.raises(SystemExit) as exited:      # argparse's own exit, through OneLineParser
        vlengine_main(["convert-checkpoint", "--from", "vilbert", str(uniter), out])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and "invalid choice: 'vilbert'" in err[0], err
