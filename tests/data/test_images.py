"""Raw-image mode: resize, normalisation, flips that move boxes, raw-image stores and batches."""

import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vlengine.data.cli import main as data_main
from vlengine.data.convert import ConversionError
from vlengine.data.images import CAFFE_BGR_MEAN, TORCHVISION_MEAN, TORCHVISION_STD, ImageTransform, flip_boxes
from vlengine.data.loading import make_pretrain_loader
from vlengine.data.store import open_store
from vlengine.data.text import write_vocab


def _image_with_block(w=90, h=60, box=(10, 20, 29, 39), colour=(250, 10, 10)):
    rgb = np.full((h, w, 3), 120, np.uint8)
    x1, y1, x2, y2 = box
    rgb[y1:y2 + 1, x1:x2 + 1] = colour
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return rgb, buf.getvalue()


def test_normalisations():
    rgb, png = _image_with_block()
    caffe, _, _ = ImageTransform(None, None, "caffe")(png, np.zeros((0, 4)))
    np.testing.assert_allclose(caffe[:, 25, 15], np.array([10, 10, 250], np.float32) - CAFFE_BGR_MEAN, atol=1e-4)  # BGR
    tv, _, size = ImageTransform(None, None, "torchvision")(png, np.zeros((0, 4)))
    np.testing.assert_allclose(tv[:, 25, 15], (np.array([250, 10, 10]) / 255 - TORCHVISION_MEAN) / TORCHVISION_STD, atol=1e-5)
    assert tv.shape == (3, 60, 90) and size.tolist() == [60, 90]


def test_resize_scales_boxes_with_the_image():
    rgb, png = _image_with_block(w=90, h=60, box=(10, 20, 29, 39))
    t = ImageTransform(min_size=120, max_size=150, normalisation="torchvision")
    img, boxes, size = t(png, np.array([[10, 20, 29, 39]]))
    # short side 60 -> 120 would make the long side 180 > 150: scale = 150 / 90
    assert size.tolist() == [100, 150] and img.shape == (3, 100, 150)
    np.testing.assert_allclose(boxes, [[10 * 150 / 90, 20 * 100 / 60, 29 * 150 / 90, 39 * 100 / 60]], rtol=1e-5)
    red = img[0] > 1.5  # the red block, after resizing
    ys, xs = np.nonzero(red)
    assert abs(xs.min() - boxes[0, 0]) <= 2 and abs(xs.max() - boxes[0, 2]) <= 2
    assert abs(ys.min() - boxes[0, 1]) <= 2 and abs(ys.max() - boxes[0, 3]) <= 2


def test_flip_moves_boxes_with_pixels():
    rgb, png = _image_with_block(w=90, h=60, box=(10, 20, 29, 39))
    t = ImageTransform(None, None, "torchvision", flip_prob=1.0)
    img, boxes, _ = t(png, np.array([[10, 20, 29, 39], [0, 0, 89, 59]]), np.random.default_rng(0))
    x1, y1, x2, y2 = boxes[0].astype(int)
    assert (x1, x2) == (60, 79)
    red = img[0] > 1.5
    assert red[y1:y2 + 1, x1:x2 + 1].all() and red.sum() == 20 * 20      # the block is exactly inside the box
    np.testing.assert_array_equal(boxes[1], [0, 0, 89, 59])               # whole-image box stays whole
    np.testing.assert_array_equal(flip_boxes(flip_boxes(boxes, 90), 90), boxes)
    # flip decisions come from the item's generator: reproducible
    t2 = ImageTransform(None, None, "caffe", flip_prob=0.5)
    flips = [t2(png, np.array([[10, 20, 29, 39]]), np.random.default_rng(s))[1][0, 0] == 60 for s in range(40)]
    assert 5 < sum(flips) < 35
    assert flips == [t2(png, np.array([[10, 20, 29, 39]]), np.random.default_rng(s))[1][0, 0] == 60 for s in range(40)]


def test_bad_images_and_arguments():
    with pytest.raises(ValueError, match="shard 3 image 7: cannot decode"):
        ImageTransform()(b"not an image", np.zeros((0, 4)), source="shard 3 image 7")
    with pytest.raises(ValueError, match="normalisation"):
        ImageTransform(normalisation="imagenet")
    with pytest.raises(ValueError, match="min_size"):
        ImageTransform(min_size=800, max_size=600)


def test_raw_image_store_from_images_dir(tmp_path):
    os.makedirs(tmp_path / "imgs")
    rows = []
    for i in range(5):
        rgb, png = _image_with_block(w=80 + i, h=50 + i)
        Image.fromarray(rgb).save(tmp_path / "imgs" / f"{i}.jpg", quality=95)
        rows.append({"image": f"{i}.jpg", "boxes": [[10, 20, 29, 39]], "labels": [3]})
    (tmp_path / "boxes.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    vocab = write_vocab(["a", "red", "square"], str(tmp_path / "vocab.txt"))
    (tmp_path / "caps.jsonl").write_text("\n".join(json.dumps({"image_id": f"{i}.jpg", "caption": "a red square"})
                                                   for i in range(5)) + "\n")
    rc = data_main(["convert", "--from", "images", str(tmp_path / "imgs"), "--boxes", str(tmp_path / "boxes.jsonl"),
                    "--out", str(tmp_path / "s"), "--captions", str(tmp_path / "caps.jsonl"), "--vocab", vocab,
                    "--no-progress"])
    assert rc == 0
    store = open_store(str(tmp_path / "s"), verify="full")
    assert store.has_images and not store.has_features
    rec = store.image(2)
    np.testing.assert_array_equal(rec["boxes"], [[0, 0, 81, 51], [10, 20, 29, 39]])  # region 0 = whole image
    assert rec["labels"].tolist() == [-1, 3] and rec["image_size"].tolist() == [52, 82]
    loader = make_pretrain_loader(str(tmp_path / "s"), batch_size=5, epochs=1,
                                  image_transform=ImageTransform(100, 200, "caffe", flip_prob=0.5))
    [batch] = list(loader)
    assert batch.images.shape[0] == 5 and batch.images.shape[1] == 3 and batch.region_features is None
    for row in range(5):
        h, w = batch.image_size[row].int().tolist()
        assert h == 100 and batch.images[row, :, :h, :w].abs().sum() > 0
        assert (batch.images[row, :, h:, :] == 0).all() and (batch.images[row, :, :, w:] == 0).all()  # padding = mean
        x1, y1, x2, y2 = batch.region_boxes[row, 1].round().int().tolist()
        # the (red) block sits inside its box whether or not the row was flipped: B-G-R order, R channel = index 2
        inside = batch.images[row, 2, y1 + 2:y2 - 1, x1 + 2:x2 - 1]
        assert (inside > 80).all()
    # a broken image is named with its line and path, and nothing is left behind
    (tmp_path / "imgs" / "3.jpg").write_bytes(b"\xff\xd8garbage")
    rc = data_main(["convert", "--from", "images", str(tmp_path / "imgs"), "--boxes", str(tmp_path / "boxes.jsonl"),
                    "--out", str(tmp_path / "t"), "--no-progress"])
    assert rc == 1 and not os.path.exists(tmp_path / "t") and not os.path.exists(str(tmp_path / "t") + ".partial")
    from vlengine.data.convert.images_dir import ImageDirSource
    with pytest.raises(ConversionError, match=r"boxes\.jsonl line 4 .*3\.jpg.*cannot decode"):
        list(ImageDirSource(str(tmp_path / "imgs"), str(tmp_path / "boxes.jsonl")).records())


def test_embedded_corpus_in_raw_image_mode(small_corpus):
    loader = make_pretrain_loader(os.path.join(small_corpus, "train"), batch_size=4, epochs=1,
                                  image_transform=ImageTransform(None, None, "torchvision"))
    batch = next(iter(loader))
    assert batch.images.shape == (4, 3, 128, 128) and batch.region_features is None
    assert torch.isfinite(batch.images).all()


def test_flipped_images_swap_left_and_right_in_captions(small_corpus):
    from vlengine.data.loading import CaptionImageDataset
    from vlengine.data.text import load_tokenizer
    path = os.path.join(small_corpus, "train")
    tok = load_tokenizer(os.path.join(small_corpus, "vocab.txt"))
    plain = CaptionImageDataset(path, image_transform=ImageTransform(None, None, "caffe", flip_prob=0.0))
    flipped = CaptionImageDataset(path, image_transform=ImageTransform(None, None, "caffe", flip_prob=1.0))
    store = open_store(path)
    j = next(j for j in range(len(store.captions)) if " left of " in store.caption(j)["text"])
    a, b = plain[(0, j)], flipped[(0, j)]
    assert " left of " in tok.decode(a["input_ids"]) and " right of " in tok.decode(b["input_ids"])
    np.testing.assert_array_equal(b["image"], a["image"][:, :, ::-1])
    np.testing.assert_array_equal(b["boxes"][:, [2, 0]], 127 - a["boxes"][:, [0, 2]])
