"""Reading one file at a time: every kind of bad or odd file, cropping and resizing, listing.

Every file is made here, in tmp_path; nothing depends on a real dataset.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from animegan.data import folder
from animegan.data.folder import DecodeSpec, decode_file, list_images

SIZE = 32
SPEC = DecodeSpec(size=SIZE, min_size=8)


def save(path, im: Image.Image, fmt: str = None, **kw) -> str:
    im.save(path, fmt, **kw)
    return str(path)


def rgb(w=48, h=48, color=(200, 40, 40)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def decoded_color(path, spec=SPEC):
    d = decode_file(str(path), spec)
    assert d.reason == "" and d.image is not None, d.reason
    assert d.image.shape == (3, spec.size, spec.size) and d.image.dtype == np.uint8
    return d, d.image.reshape(3, -1).mean(axis=1)


# --- files that must be dropped, each with its reason ------------------------------------------

def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert decode_file(str(tmp_path / "empty.jpg"), SPEC).reason == folder.EMPTY


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert decode_file(str(tmp_path / "cut.jpg"), SPEC).reason == folder.CORRUPT


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture\n")
    assert decode_file(str(tmp_path / "notes.jpg"), SPEC).reason == folder.NOT_IMAGE


def test_tiny_image_is_too_small_unless_min_size_is_zero(tmp_path):
    path = save(tmp_path / "dot.png", rgb(1, 1, (10, 200, 30)))
    assert decode_file(path, SPEC).reason == folder.TOO_SMALL
    d, mean = decoded_color(path, DecodeSpec(size=SIZE, min_size=0))
    assert "upscaled" in d.notes and np.allclose(mean, (10, 200, 30), atol=1)


def test_decompression_bomb_is_skipped_quickly(tmp_path, monkeypatch):
    path = save(tmp_path / "bomb.png", rgb(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px: over twice the limit -> error
    assert decode_file(path, SPEC).reason == folder.BOMB
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # between 1x and 2x: Pillow only warns
    assert decode_file(path, SPEC).reason == folder.BOMB


def test_unreadable_file(tmp_path, monkeypatch):
    path = save(tmp_path / "secret.png", rgb())
    os.chmod(path, 0)
    if os.geteuid() == 0:  # root reads mode-000 files: make the read itself fail
        real = folder._read_bytes

        def deny(p):
            if p == path:
                raise PermissionError(13, "Permission denied", p)
            return real(p)

        monkeypatch.setattr(folder, "_read_bytes", deny)
    assert decode_file(path, SPEC).reason == folder.DENIED


def test_broken_symlink_is_listed_and_dropped(tmp_path):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
    files, _ = list_images(str(tmp_path))
    assert [f.rel for f in files] == ["link.jpg"]
    assert decode_file(str(tmp_path / "link.jpg"), SPEC).reason == folder.MISSING


# --- odd files that are converted and kept --------------------------------------------------

def test_png_with_alpha_is_composited_on_white(tmp_path):
    im = Image.new("RGBA", (40, 40), (0, 0, 255, 255))
    im.paste((0, 0, 0, 0), (0, 0, 40, 20))  # top half fully transparent
    d = decode_file(save(tmp_path / "a.png", im), SPEC)
    assert "alpha composited" in d.notes
    top, bottom = d.image[:, 2, SIZE // 2], d.image[:, -3, SIZE // 2]
    assert top.tolist() == [255, 255, 255] and bottom.tolist() == [0, 0, 255]


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_image(tmp_path, transparent):
    im = Image.new("P", (40, 40), 1)
    im.putpalette([0, 0, 0, 30, 160, 90] + [0] * 762)
    kw = {"transparency": 1} if transparent else {}
    d, mean = decoded_color(save(tmp_path / "p.png", im, **kw))
    assert "palette" in d.notes
    expected = (255, 255, 255) if transparent else (30, 160, 90)
    assert np.allclose(mean, expected, atol=1) and (("alpha composited" in d.notes) == transparent)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    d, mean = decoded_color(save(tmp_path / "g.jpg", Image.new("L", (40, 40), 90)))
    assert "grayscale" in d.notes and np.allclose(mean, 90, atol=2)
    assert (d.image[0] == d.image[1]).all() and (d.image[1] == d.image[2]).all()


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))  # left black, right white
    path = save(tmp_path / "deep.png", Image.fromarray(ramp))
    assert Image.open(path).mode.startswith("I")
    d, mean = decoded_color(path)
    assert "16-bit" in d.notes
    row = d.image[0, SIZE // 2].astype(int)
    assert row[0] < 16 and row[-1] > 239 and 100 < row[SIZE // 2] < 156  # a ramp, not 0/255 garbage
    assert (np.diff(row) >= -1).all()


def test_cmyk_jpeg(tmp_path):
    d, mean = decoded_color(save(tmp_path / "c.jpg", Image.new("CMYK", (40, 40), (0, 255, 255, 0))))
    assert "CMYK" in d.notes and np.allclose(mean, (255, 0, 0), atol=8)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_image_keeps_the_first_frame(tmp_path, fmt):
    frames = [rgb(40, 40, (250, 0, 0)), rgb(40, 40, (0, 0, 250))]
    path = save(tmp_path / f"anim.{fmt.lower()}", frames[0], fmt, save_all=True, append_images=frames[1:],
                duration=100, loop=0, **({"lossless": True} if fmt == "WEBP" else {}))
    d, mean = decoded_color(path)
    assert "animated (first frame)" in d.notes
    assert mean[0] > 240 and mean[2] < 15


def test_non_utf8_file_name(tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9-\xff.png")
    rgb().save(open(name, "wb"), "PNG")
    files, _ = list_images(str(tmp_path))
    assert len(files) == 1 and os.fsencode(files[0].rel) == b"caf\xe9-\xff.png"
    decoded_color(os.path.join(str(tmp_path), files[0].rel))


# --- geometry: crop, filter, sizes ---------------------------------------------------------------

def bands() -> Image.Image:
    """300x100: red | green | blue thirds."""
    im = Image.new("RGB", (300, 100))
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        im.paste(c, (100 * i, 0, 100 * (i + 1), 100))
    return im


def test_center_crop_takes_the_middle_square(tmp_path):
    _, mean = decoded_color(save(tmp_path / "b.png", bands()), DecodeSpec(size=SIZE, crop="center"))
    assert np.allclose(mean, (0, 255, 0), atol=3)


def test_resize_keeps_the_whole_image_squashed(tmp_path):
    d = decode_file(save(tmp_path / "b.png", bands()), DecodeSpec(size=30, crop="resize"))
    left, middle, right = d.image[:, 15, 3], d.image[:, 15, 15], d.image[:, 15, 26]
    assert left.argmax() == 0 and middle.argmax() == 1 and right.argmax() == 2


def test_downscaling_is_anti_aliased(tmp_path):
    checker = ((np.indices((256, 256)).sum(axis=0) % 2) * 255).astype(np.uint8)  # 1-pixel checkerboard
    d, mean = decoded_color(save(tmp_path / "c.png", Image.fromarray(checker).convert("RGB")))
    assert np.abs(d.image.astype(int) - 128).max() < 10  # averages to grey; nearest would give 0/255


@pytest.mark.parametrize("w,h", [(512, 384), (97, 200), (SIZE, SIZE), (20, 600)])
def test_any_shape_gives_a_square_at_the_size(tmp_path, w, h):
    path = save(tmp_path / "x.jpg", rgb(w, h, (20, 120, 220)), quality=95)
    _, mean = decoded_color(path)
    assert np.allclose(mean, (20, 120, 220), atol=6)  # the JPEG draft path keeps the colours


def test_hashes(tmp_path):
    ramp = Image.fromarray(np.tile(np.arange(0, 250, 2, dtype=np.uint8), (125, 1))).convert("RGB")  # dark -> light
    a = save(tmp_path / "a.png", ramp)
    b = save(tmp_path / "b.png", ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    spec = DecodeSpec(size=SIZE, perceptual_hash=True)
    da, db, da2 = decode_file(a, spec), decode_file(b, spec), decode_file(a, spec)
    assert len(da.content_hash) == 16 and da.content_hash == da2.content_hash != db.content_hash
    assert da.dhash == da2.dhash == 2**64 - 1 and db.dhash == 0  # every cell brighter / darker than its left


# --- listing ---------------------------------------------------------------------------------

def test_listing_is_recursive_sorted_and_skips_hidden_cache_and_other_files(tmp_path):
    for rel in ["b/2.png", "a/deep/1.JPG", "c.webp", ".animegan-cache/x.png", ".git/y.png", "cache/z.png",
                "__MACOSX/b/._2.png", "b/._2.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        save(tmp_path / rel, rgb(), "PNG")
    (tmp_path / "README.txt").write_text("hi")
    (tmp_path / "labels.csv").write_text("a,b")
    files, ignored = list_images(str(tmp_path), exclude=[str(tmp_path / "cache")])
    assert [f.rel for f in files] == ["a/deep/1.JPG", "b/2.png", "c.webp"]
    assert ignored == 3 and all(f.size > 0 and f.mtime_ns > 0 for f in files)  # 2 other files, 1 hidden
