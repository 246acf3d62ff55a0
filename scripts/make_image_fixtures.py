#!/usr/bin/env python3
"""Golden fixtures for the image code, made with PIL (Pillow) and timm's own RandAugment op
functions: decoded pixels of JPEGs of every kind ImageNet holds (baseline, progressive, grey,
CMYK, 4:4:4, a PNG named .JPEG), crops resized the way torchvision's RandomResizedCrop does it,
resizes with fractional boxes, the eval transform, every RandAugment op at fixed arguments, and
ToTensor + Normalize. The C++ tests (tests/unit/test_images.cpp) must reproduce them.

Also the statistics of timm's RandomResizedCrop parameters over many draws, which the C++
sampler must match in distribution.

usage: make_image_fixtures.py --out DIR
Writes DIR/manifest.json and raw files: uint8 HWC (.u8) or float32 CHW (.f32).
"""
import argparse
import glob
import io
import json
import math
import os
import random
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_compat import timm  # noqa: E402,F401  (makes `import timm` work beside the CPU torch)
from timm.data import auto_augment as aa  # noqa: E402
from timm.data.transforms import RandomResizedCropAndInterpolation  # noqa: E402

PHOTOS = "/usr/share/backgrounds/mate/nature"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
FILL = tuple(min(255, round(255 * m)) for m in MEAN)


def save_u8(out, name, img):
    arr = np.asarray(img.convert("RGB") if img.mode != "L" else img, dtype=np.uint8)
    arr.tofile(os.path.join(out, name))
    return {"file": name, "width": img.size[0], "height": img.size[1], "channels": 1 if img.mode == "L" else 3}


def source_photo():
    files = sorted(glob.glob(os.path.join(PHOTOS, "*.jpg")))
    if not files:
        sys.exit(f"make_image_fixtures: no photos in {PHOTOS} (apt-get install mate-backgrounds)")
    photo = Image.open(files[0]).convert("RGB")
    scale = 500 / photo.size[0]
    photo = photo.resize((500, max(375, round(photo.size[1] * scale))), Image.BICUBIC)
    return photo.crop((0, 0, 500, 375))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    m = {"mean": MEAN, "std": STD, "fill": FILL}
    photo = source_photo()

    # --- sources of every kind, and PIL's decoding of each -------------------------------------
    kinds = {}
    photo.save(os.path.join(out, "baseline.jpg"), "JPEG", quality=90)
    photo.save(os.path.join(out, "progressive.jpg"), "JPEG", quality=90, progressive=True)
    photo.save(os.path.join(out, "q95_444.jpg"), "JPEG", quality=95, subsampling=0)
    photo.convert("L").save(os.path.join(out, "grey.jpg"), "JPEG", quality=90)
    photo.convert("CMYK").save(os.path.join(out, "cmyk.jpg"), "JPEG", quality=90)
    photo.crop((0, 0, 333, 250)).save(os.path.join(out, "png_named.JPEG"), "PNG")
    photo.crop((0, 0, 200, 150)).convert("RGBA").save(os.path.join(out, "rgba.png"), "PNG")
    photo.crop((0, 0, 200, 150)).convert("P", palette=Image.ADAPTIVE).save(os.path.join(out, "palette.png"), "PNG")
    odd = photo.crop((3, 5, 3 + 333, 5 + 211))  # sizes that are not multiples of the MCU
    odd.save(os.path.join(out, "odd.jpg"), "JPEG", quality=85)
    for name in ("baseline.jpg", "progressive.jpg", "q95_444.jpg", "grey.jpg", "cmyk.jpg", "png_named.JPEG",
                 "rgba.png", "palette.png", "odd.jpg"):
        with open(os.path.join(out, name), "rb") as f:
            img = Image.open(io.BytesIO(f.read())).convert("RGB")
        kinds[name] = save_u8(out, name + ".rgb.u8", img)
    m["decode"] = kinds

    # --- RandomResizedCrop geometry: crop then resize, as torchvision's F.resized_crop on PIL ----
    base = Image.open(os.path.join(out, "baseline.jpg")).convert("RGB")
    crops = []
    rng = random.Random(7)
    boxes = [(0, 0, 500, 375), (10, 20, 300, 200), (123, 45, 97, 130), (250, 100, 224, 224), (1, 1, 40, 30),
             (400, 300, 100, 75)]
    for i in range(6):
        w = rng.randint(30, 500)
        h = rng.randint(30, 375)
        boxes.append((rng.randint(0, 500 - w), rng.randint(0, 375 - h), w, h))
    for k, (x, y, w, h) in enumerate(boxes):
        for filt, fname in ((Image.BICUBIC, "bicubic"), (Image.BILINEAR, "bilinear")):
            for size in (224, 160) if filt == Image.BICUBIC else (224,):
                img = base.crop((x, y, x + w, y + h)).resize((size, size), filt)
                entry = save_u8(out, f"crop{k}_{fname}_{size}.u8", img)
                entry.update({"region": [x, y, w, h], "filter": fname, "size": size})
                crops.append(entry)
    m["crops"] = crops

    # Image.resize with a fractional box (what a DCT-shrunk region resamples with).
    boxes_f = []
    for k, box in enumerate([(0.25, 0.5, 200.75, 150.25), (10.5, 3.125, 480.0, 371.5)]):
        img = base.resize((224, 168), Image.BICUBIC, box=box)
        entry = save_u8(out, f"box{k}.u8", img)
        entry.update({"box": box})
        boxes_f.append(entry)
    m["boxes"] = boxes_f

    # --- eval transform: Resize(floor(224 / 0.875)) on the shorter side, CenterCrop(224) --------
    evals = []
    for name in ("baseline.jpg", "odd.jpg", "grey.jpg"):
        img = Image.open(os.path.join(out, name)).convert("RGB")
        size, crop_pct = 224, 0.875
        short_to = math.floor(size / crop_pct)
        w, h = img.size
        if w <= h:  # torchvision: the long side is int(short_to * long / short)
            rw, rh = short_to, int(short_to * h / w)
        else:
            rw, rh = int(short_to * w / h), short_to
        r = img.resize((rw, rh), Image.BICUBIC)
        top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
        c = r.crop((left, top, left + size, top + size))
        entry = save_u8(out, f"eval_{name}.u8", c)
        entry.update({"source": name})
        evals.append(entry)
    m["eval"] = evals

    # --- RandAugment ops at fixed arguments (timm's functions, PIL underneath) --------------------
    op_base = base.crop((60, 40, 60 + 300, 40 + 300)).resize((224, 224), Image.BICUBIC)
    m["op_base"] = save_u8(out, "op_base.u8", op_base)
    kw = {"fillcolor": FILL, "resample": Image.BICUBIC}
    ops = lambda kw, fill: [  # noqa: E731
        ("AutoContrast", [], lambda im: aa.auto_contrast(im)),
        ("Equalize", [], lambda im: aa.equalize(im)),
        ("Invert", [], lambda im: aa.invert(im)),
        ("Rotate", [27.0], lambda im: aa.rotate(im, 27.0, **kw)),
        ("Rotate", [-13.5], lambda im: aa.rotate(im, -13.5, **kw)),
        ("Posterize", [2], lambda im: aa.posterize(im, 2)),
        ("Solarize", [100], lambda im: aa.solarize(im, 100)),
        ("SolarizeAdd", [99], lambda im: aa.solarize_add(im, 99)),
        ("Color", [0.19], lambda im: aa.color(im, 0.19)),
        ("Color", [1.81], lambda im: aa.color(im, 1.81)),
        ("Contrast", [0.19], lambda im: aa.contrast(im, 0.19)),
        ("Contrast", [1.81], lambda im: aa.contrast(im, 1.81)),
        ("Brightness", [0.19], lambda im: aa.brightness(im, 0.19)),
        ("Brightness", [1.81], lambda im: aa.brightness(im, 1.81)),
        ("Sharpness", [0.19], lambda im: aa.sharpness(im, 0.19)),
        ("Sharpness", [1.81], lambda im: aa.sharpness(im, 1.81)),
        ("ShearX", [0.27], lambda im: aa.shear_x(im, 0.27, **kw)),
        ("ShearX", [-0.2], lambda im: aa.shear_x(im, -0.2, **kw)),
        ("ShearY", [0.27], lambda im: aa.shear_y(im, 0.27, **kw)),
        ("TranslateXRel", [0.405], lambda im: aa.translate_x_rel(im, 0.405, **kw)),
        ("TranslateYRel", [-0.3], lambda im: aa.translate_y_rel(im, -0.3, **kw)),
        ("AffineBilinear", [0.9, 0.2, 5.5, -0.1, 1.1, -3.25],
         lambda im: im.transform(im.size, Image.AFFINE, (0.9, 0.2, 5.5, -0.1, 1.1, -3.25), resample=Image.BILINEAR,
                                 fillcolor=fill)),
        ("AffineBicubic", [0.9, 0.2, 5.5, -0.1, 1.1, -3.25],
         lambda im: im.transform(im.size, Image.AFFINE, (0.9, 0.2, 5.5, -0.1, 1.1, -3.25), resample=Image.BICUBIC,
                                 fillcolor=fill)),
    ]
    entries = []
    for k, (name, args, fn) in enumerate(ops(kw, FILL)):
        entry = save_u8(out, f"op{k}_{name}.u8", fn(op_base.copy()))
        entry.update({"op": name, "args": args})
        entries.append(entry)
    grey_base = op_base.convert("L")
    m["op_base_grey"] = save_u8(out, "op_base_grey.u8", grey_base)
    grey_ops = []
    grey_kw = {"fillcolor": FILL[0], "resample": Image.BICUBIC}
    for k, (name, args, fn) in enumerate(ops(grey_kw, FILL[0])):
        entry = save_u8(out, f"greyop{k}_{name}.u8", fn(grey_base.copy()))
        entry.update({"op": name, "args": args})
        grey_ops.append(entry)
    m["ops"] = entries
    m["grey_ops"] = grey_ops

    # --- ToTensor + Normalize (float32, as torchvision computes it) -----------------------------
    x = np.asarray(op_base, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    x = (x - np.array(MEAN, dtype=np.float32)[:, None, None]) / np.array(STD, dtype=np.float32)[:, None, None]
    x.astype(np.float32).tofile(os.path.join(out, "normalised.f32"))
    m["normalised"] = "normalised.f32"

    # --- RandomResizedCrop statistics (timm's get_params, 20000 draws on 500x375) ------------------
    import timm.data.transforms as timm_transforms  # its torchvision F is inert here: give it the one call it makes
    timm_transforms.F.get_image_size = lambda img: list(img.size)
    random.seed(3)
    draws = [RandomResizedCropAndInterpolation.get_params(base, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(20000)]
    area = np.array([h * w / (500 * 375) for (_, _, h, w) in draws])
    aspect = np.array([math.log(w / h) for (_, _, h, w) in draws])
    m["rrc_stats"] = {"width": 500, "height": 375, "area_mean": float(area.mean()), "area_std": float(area.std()),
                      "log_aspect_mean": float(aspect.mean()), "log_aspect_std": float(aspect.std()),
                      "full_image_share": float(np.mean([(h, w) == (375, 500) for (_, _, h, w) in draws]))}

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(m, f, indent=1)
    print(f"image fixtures in {out}")


if __name__ == "__main__":
    main()
