"""Qwen2.5-VL JSON grounding: ``bbox_2d`` in absolute pixels of the *resized* model input.

The image the model saw is ``smart_resize(height, width)`` of the original; boxes map
back with ``x * width / w_in`` (the Qwen2.5-VL grounding cookbook's ``plot_bounding_boxes``
scales by ``width / input_width``). Without ``input_size`` the coordinates are taken as
pixels of the original image.
"""

from __future__ import annotations

from georeason.geo.grounding.detections import Detection
from georeason.models.formats.core import Builder, check_size, guard, parse_json_grounding
from georeason.models.formats.registry import Convention, Format, register
from georeason.models.formats.resize import smart_resize  # noqa: F401  (doctest)

__all__ = ["parse_qwen25", "FORMAT"]


def parse_qwen25(
    text: str,
    image_size: tuple[int, int],
    input_size: tuple[int, int] | None = None,
    label: str | None = None,
) -> list[Detection]:
    """Detections from Qwen2.5-VL JSON grounding output.

    Parameters
    ----------
    text : str
        A JSON list such as ``[{"bbox_2d": [x1, y1, x2, y2], "label": "building"}]``
        (``point_2d: [x, y]`` for points), possibly in a Markdown ``json`` code fence, with
        prose around it, single quotes, trailing commas, a single object instead of a
        list, or cut off (the complete objects before the cut are kept).
    image_size : (int, int)
        ``(width, height)`` of the original tile image, in pixels.
    input_size : (int, int), optional
        ``(w_in, h_in)`` of the image the model saw (``smart_resize`` gives
        ``(h_in, w_in)``!). Qwen2.5-VL answers in absolute pixels of that image; they are
        scaled by ``width / w_in`` and ``height / h_in``. ``None``: the coordinates are
        already in the original image.
    label : str, optional
        Label for objects the model did not label (default ``"object"``).

    Examples
    --------
    >>> h_in, w_in = smart_resize(1024, 1024)
    >>> out = '```json\\n[{"bbox_2d": [98, 196, 490, 490], "label": "building"}]\\n```'
    >>> [(d.label, d.kind, d.geometry.bounds) for d in parse_qwen25(out, (1024, 1024), (w_in, h_in))]
    [('building', 'box', (102.4, 204.8, 512.0, 512.0))]
    """
    size = check_size(image_size)
    w, h = size
    if input_size is None:
        mapx = mapy = None
    else:
        w_in, h_in = check_size(input_size)
        mapx, mapy = (lambda v: v * w / w_in), (lambda v: v * h / h_in)
    return guard("qwen2.5", parse_json_grounding, text, Builder("qwen2.5", size, label, mapx, mapy))


FORMAT = register(
    Format(
        name="qwen2.5",
        family="Qwen2.5-VL (and fine-tunes: RemoteReasoner's base, many RS grounding models)",
        aliases=("qwen25", "qwen2_5", "qwen2-5", "qwen2.5-vl"),
        convention=Convention(
            "pixels of the resized model input",
            "x-first",
            ("box", "point"),
            "x * width / w_in, with (h_in, w_in) = smart_resize(height, width, min/max pixels)",
        ),
        prompt="Locate every {label} in the image and output the bbox coordinates of each in JSON format "
        'as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}}, ...].',
        parse=parse_qwen25,
        options=("input_size",),
        models=(r"qwen2(\.|_|-)?5(-|_)?vl",),
        marker=r"bbox_2d|point_2d",
        specificity=55,
        cases=(),
    )
)
