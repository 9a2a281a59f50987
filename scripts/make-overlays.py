"""Draws the sample campaign's overlay PNGs (RGBA, real alpha) that the embedded default config uses.

Run once by a developer when the artwork changes; the PNGs are committed so the node needs no
Python at run time:  .venv/bin/python scripts/make-overlays.py [NAME ...]
"""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "edge-node/engine/assets/overlays"
BOLD = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
REGULAR = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


def font(path, size):
    return ImageFont.truetype(path, size, index=2)  # index 2 = Simplified Chinese face


def rounded_card(size, fill, radius=22):
    img = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(img).rounded_rectangle([0, 0, size[0] - 1, size[1] - 1], radius, fill=fill)
    return img


def live_badge():
    img = rounded_card((196, 56), (220, 30, 60, 235), radius=14)
    d = ImageDraw.Draw(img)
    d.ellipse([16, 20, 32, 36], fill=(255, 255, 255, 255))
    d.text((42, 6), "LIVE 直播", font=font(BOLD, 30), fill=(255, 255, 255, 255))
    return img


def mall_ad():
    # A translucent banner with a gradient: exercises partial alpha in the blend.
    w, h = 440, 120
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    grad = Image.new("RGBA", (w, h))
    for x in range(w):
        t = x / (w - 1)
        col = (int(255 * (1 - t) + 250 * t), int(140 * (1 - t) + 60 * t), int(0 * (1 - t) + 120 * t), 215)
        ImageDraw.Draw(grad).line([(x, 0), (x, h)], fill=col)
    mask = rounded_card((w, h), (255, 255, 255, 255), radius=24).getchannel("A")
    img.paste(grad, (0, 0), mask)
    d = ImageDraw.Draw(img)
    d.text((22, 8), "武林银泰 Yintai Mall", font=font(BOLD, 34), fill=(255, 255, 255, 255))
    d.text((22, 62), "B1 美妆节 · 满300减50 · 今天", font=font(REGULAR, 28), fill=(255, 255, 240, 255))
    return img


def product_card():
    img = rounded_card((300, 150), (255, 255, 255, 225), radius=20)
    d = ImageDraw.Draw(img)
    d.text((18, 10), "Silk Scarf 真丝围巾", font=font(BOLD, 28), fill=(30, 30, 30, 255))
    d.text((18, 56), "¥199", font=font(BOLD, 46), fill=(220, 30, 60, 255))
    d.text((140, 74), "¥299", font=font(REGULAR, 26), fill=(120, 120, 120, 255))
    d.line([(138, 92), (200, 92)], fill=(120, 120, 120, 255), width=2)
    d.text((18, 112), "tap to buy · 点击购买", font=font(REGULAR, 22), fill=(90, 90, 90, 255))
    return img


def default_ad():
    img = rounded_card((460, 100), (20, 90, 200, 200), radius=22)
    d = ImageDraw.Draw(img)
    d.text((22, 6), "全国包邮 Free shipping", font=font(BOLD, 32), fill=(255, 255, 255, 255))
    d.text((22, 54), "order during the show 直播间下单", font=font(REGULAR, 26), fill=(230, 240, 255, 255))
    return img


def back_soon():
    # Shown over the dimmed last picture while the upstream is away.
    img = rounded_card((420, 120), (15, 15, 20, 210), radius=24)
    d = ImageDraw.Draw(img)
    d.text((24, 8), "Back soon 马上回来", font=font(BOLD, 38), fill=(255, 255, 255, 255))
    d.text((24, 66), "the show will continue here", font=font(REGULAR, 26), fill=(210, 210, 220, 255))
    return img


ALL = [("live-badge", live_badge), ("yintai-mall-ad", mall_ad), ("product-card", product_card),
       ("default-ad", default_ad), ("back-soon", back_soon)]

if __name__ == "__main__":
    import sys
    wanted = set(sys.argv[1:])  # names to draw; none = all
    OUT.mkdir(parents=True, exist_ok=True)
    for name, draw in ALL:
        if wanted and name not in wanted:
            continue
        path = OUT / f"{name}.png"
        draw().save(path, optimize=True)
        print(path, path.stat().st_size, "bytes")
