"""Colour checks on computed CSS colours (``rgb(...)`` strings) for the theme e2e tests."""

from __future__ import annotations

import re

_SRGB = r"color\(srgb\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)(?:\s*/\s*([\d.]+))?\)"


def rgb(css: str) -> tuple[float, float, float, float]:
    """(r, g, b, alpha) of a computed ``rgb()``/``rgba()``/``color(srgb ...)`` colour."""
    srgb = re.match(_SRGB, css.strip())
    if srgb:
        r, g, b = (255 * float(srgb.group(i)) for i in (1, 2, 3))
        return r, g, b, float(srgb.group(4)) if srgb.group(4) is not None else 1.0
    m = re.match(r"rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)", css.strip())
    if not m:
        raise ValueError(f"not a computed rgb() colour: {css!r}")
    r, g, b = (float(m.group(i)) for i in (1, 2, 3))
    return r, g, b, float(m.group(4)) if m.group(4) is not None else 1.0


def over(fg: str, bg: str) -> tuple[float, float, float]:
    """``fg`` composited over the opaque ``bg``."""
    r, g, b, a = rgb(fg)
    br, bgg, bb, _ = rgb(bg)
    return r * a + br * (1 - a), g * a + bgg * (1 - a), b * a + bb * (1 - a)


def luminance(c: tuple[float, float, float]) -> float:
    """WCAG relative luminance of an sRGB colour (0..255 channels)."""

    def lin(v: float) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])


def contrast(fg: str, bg: str) -> float:
    """WCAG contrast ratio of text colour ``fg`` on the opaque background ``bg``."""
    a = luminance(over(fg, bg))
    b = luminance(rgb(bg)[:3])
    hi, lo = max(a, b), min(a, b)
    return (hi + 0.05) / (lo + 0.05)


# Computed colours of the elements a reader must see, read in the page.
COMPUTED = """(root) => {
  const cs = (el) => getComputedStyle(el);
  const title = root.querySelector('.calab-card-title');
  const button = root.querySelector('[data-testid=pin]');
  const box = root.querySelector('input[aria-label="sparsity λ value"]');
  const b = cs(button);
  return {
    root: { color: cs(root).color, background: cs(root).backgroundColor },
    card: { background: cs(root.querySelector('.calab-card')).backgroundColor },
    title: { color: cs(title).color },
    button: { color: b.color, background: b.backgroundColor, border: b.borderTopColor,
              borderWidth: b.borderTopWidth, borderStyle: b.borderTopStyle },
    box: { color: cs(box).color, background: cs(box).backgroundColor,
           borderWidth: cs(box).borderTopWidth, borderStyle: cs(box).borderTopStyle,
           value: box.value, scrollWidth: box.scrollWidth, clientWidth: box.clientWidth },
  };
}"""
