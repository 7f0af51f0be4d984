"""Draw the application icon and write it in the formats each platform wants.

Writes ``tl_desktop/resources/icons/app.png`` (window icon, Linux), ``app.ico`` (Windows executable) and
``app.icns`` (macOS .app). Run once after changing the drawing: ``python packaging/make_icons.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ICONS_DIR = Path(__file__).resolve().parent.parent / "tl_desktop" / "resources" / "icons"
SIZE = 1024
BACKGROUND = (32, 96, 120)
LEAF = (120, 200, 110)
NODE = (245, 245, 240)


def draw_icon(size: int = SIZE) -> Image.Image:
    """A rounded tile with a leaf-shaped image and three network nodes: images in, classes out."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    s = size / 1024
    draw.rounded_rectangle((40 * s, 40 * s, 984 * s, 984 * s), radius=200 * s, fill=BACKGROUND)
    draw.ellipse((150 * s, 260 * s, 560 * s, 760 * s), fill=LEAF)
    draw.line((190 * s, 720 * s, 520 * s, 300 * s), fill=BACKGROUND, width=int(24 * s))
    outputs = [(820 * s, y * s) for y in (300, 510, 720)]
    for x, y in outputs:
        draw.line((560 * s, 510 * s, x, y), fill=NODE, width=int(22 * s))
    for x, y in outputs:
        r = 72 * s
        draw.ellipse((x - r, y - r, x + r, y + r), fill=NODE)
    return image


def main() -> None:
    """Write the PNG, ICO and ICNS files."""
    ICONS_DIR.mkdir(parents=True, exist_ok=True)
    icon = draw_icon()
    icon.resize((256, 256), Image.Resampling.LANCZOS).save(ICONS_DIR / "app.png")
    icon.save(ICONS_DIR / "app.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    icon.save(ICONS_DIR / "app.icns")
    print(f"icons written to {ICONS_DIR}")


if __name__ == "__main__":
    main()
