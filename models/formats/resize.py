"""How Qwen2-VL / Qwen2.5-VL resize an image before the model sees it."""

from __future__ import annotations

import math

from georeason.errors import InputError

__all__ = ["smart_resize"]


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """The ``(height, width)`` Qwen2-VL / Qwen2.5-VL resizes an image to, in pixels.

    The published algorithm (``qwen-vl-utils`` ``vision_process.smart_resize``): round
    both sides to the nearest multiple of ``factor`` (at least ``factor``); if that has
    more than ``max_pixels`` pixels, scale both sides by ``1 / beta`` with
    ``beta = sqrt(h * w / max_pixels)`` and round *down* to multiples of ``factor``; if
    fewer than ``min_pixels``, scale by ``beta = sqrt(min_pixels / (h * w))`` and round
    *up*. Python's ``round`` (half to even) is used, as upstream does.

    Note the order: ``(height, width)`` in and out, as upstream; the parsers take sizes as
    ``(width, height)``.

    Raises
    ------
    InputError
        A side is not positive, or the aspect ratio exceeds 200 (as upstream).

    Examples
    --------
    >>> smart_resize(1024, 1024)      # 1036 x 1036 would exceed max_pixels
    (980, 980)
    >>> smart_resize(512, 640)
    (504, 644)
    >>> smart_resize(30, 30)          # too small: scaled up to min_pixels
    (56, 56)
    """
    if height <= 0 or width <= 0:
        raise InputError(f"smart_resize needs positive sides, got height={height}, width={width}")
    if max(height, width) / min(height, width) > 200:
        raise InputError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width):g} "
            f"(height={height}, width={width})"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar
