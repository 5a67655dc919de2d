"""Cover-art generation: the offline procedural renderer (default) and the Gemini adapter.

``ProceduralCoverArt`` (provider ``local-procedural``) renders real artwork with Pillow and
numpy, deterministically from the prompt: a palette chosen from colour words in the
prompt (sunset, neon, ocean, forest …) and otherwise from the prompt's SHA-256, a
gradient background, layered translucent shapes whose count, size and placement come
from the hash, and the prompt's first words set as a title. Editing (a base image) keeps
the base picture — cropped square, colour-graded toward the prompt's palette — and lays
the prompt's shapes and title over it. Output: a square PNG (3000x3000 by default), which
then passes through the same cover-art validation as any upload.

``GeminiCoverArt`` (provider ``gemini``) calls the Gemini API's ``generateContent`` on
``gemini-3.1-flash-image-preview`` ("Nano Banana 2") with ``responseModalities: IMAGE``,
``aspectRatio 1:1`` and ``imageSize 1K``; a base image is sent as ``inline_data``.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import io
import random
import re
from typing import TYPE_CHECKING, Any

import httpx

from backline.application.file_ports import GeneratedImage, ImageGenerationFailed

if TYPE_CHECKING:
    from PIL import Image, ImageFont

PALETTE_WORDS: list[tuple[tuple[str, ...], list[tuple[int, int, int]]]] = [
    (("sunset", "dusk", "warm", "amber"), [(255, 94, 58), (255, 173, 96), (122, 40, 110)]),
    (("neon", "cyberpunk", "synth", "club"), [(255, 0, 170), (0, 240, 255), (30, 10, 60)]),
    (("ocean", "sea", "wave", "blue", "rain"), [(10, 60, 130), (40, 170, 210), (220, 240, 250)]),
    (("forest", "green", "nature", "moss"), [(20, 70, 40), (120, 170, 80), (230, 220, 170)]),
    (("night", "dark", "midnight", "noir"), [(8, 10, 30), (60, 50, 120), (210, 200, 255)]),
    (
        ("pastel", "lofi", "lo-fi", "dream", "soft"),
        [(250, 200, 210), (190, 220, 250), (255, 240, 200)],
    ),
    (("fire", "red", "rage", "metal"), [(120, 0, 0), (240, 60, 20), (255, 210, 80)]),
    (("gold", "luxury", "royal"), [(40, 30, 10), (212, 175, 55), (250, 240, 210)]),
    (("desert", "sand", "dust"), [(194, 140, 90), (236, 200, 150), (90, 60, 40)]),
    (("ice", "winter", "snow", "frost"), [(220, 240, 255), (140, 190, 230), (40, 70, 120)]),
]


def _seeded(prompt: str, extra: bytes = b"") -> tuple[bytes, random.Random]:
    digest = hashlib.sha256(prompt.strip().encode("utf-8") + b"\0" + extra).digest()
    return digest, random.Random(int.from_bytes(digest, "big"))


def palette_for(prompt: str, rng: random.Random) -> list[tuple[int, int, int]]:
    words = set(re.findall(r"[a-z\-]+", prompt.lower()))
    for keys, colours in PALETTE_WORDS:
        if words & set(keys):
            return list(colours)
    hue = rng.random()
    scheme = []
    for offset, sat, val in ((0.0, 0.75, 0.35), (0.08, 0.65, 0.85), (0.5, 0.45, 0.95)):
        r, g, b = colorsys.hsv_to_rgb((hue + offset) % 1.0, sat, val)
        scheme.append((int(r * 255), int(g * 255), int(b * 255)))
    return scheme


def _gradient(
    size: int, a: tuple[int, int, int], b: tuple[int, int, int], angle: float
) -> Image.Image:
    import numpy as np
    from PIL import Image

    small = 512
    ys, xs = np.mgrid[0:small, 0:small].astype(np.float32) / (small - 1)
    t = (xs * np.cos(angle) + ys * np.sin(angle) + 1.0) / 2.0
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    ca, cb = np.array(a, np.float32), np.array(b, np.float32)
    img = ca[None, None, :] * (1 - t[..., None]) + cb[None, None, :] * t[..., None]
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB").resize(
        (size, size), Image.Resampling.BICUBIC
    )


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow built without FreeType
        return ImageFont.load_default()


def _title(prompt: str) -> str:
    words = re.findall(r"[A-Za-z0-9']+", prompt)
    return " ".join(words[:3]).upper() or "UNTITLED"


def render(prompt: str, size: int = 3000, base: Image.Image | None = None) -> Image.Image:
    """Deterministic artwork for ``prompt`` (and ``base`` when editing)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageOps

    extra = b""
    if base is not None:
        extra = hashlib.sha256(base.tobytes()).digest()
    _digest, rng = _seeded(prompt, extra)
    colours = palette_for(prompt, rng)
    if base is None:
        canvas = _gradient(size, colours[0], colours[1], rng.uniform(0, 6.283))
    else:
        square = ImageOps.fit(base.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
        tint = _gradient(size, colours[0], colours[1], rng.uniform(0, 6.283))
        canvas = Image.blend(square, tint, 0.35)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(5, 11)):
        colour = rng.choice(colours)
        alpha = rng.randint(50, 150)
        cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        r = rng.uniform(size * 0.05, size * 0.35)
        shape = rng.choice(("circle", "ring", "rect", "tri"))
        fill = (*colour, alpha)
        if shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif shape == "ring":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(4, int(r / 8)))
        elif shape == "rect":
            draw.rectangle((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), fill=fill)
        else:
            draw.polygon(
                [(cx, cy - r), (cx + r * 0.87, cy + r / 2), (cx - r * 0.87, cy + r / 2)], fill=fill
            )
    layer = layer.filter(ImageFilter.GaussianBlur(radius=max(1, size // 600)))
    canvas = Image.alpha_composite(canvas.convert("RGBA"), layer)
    if base is not None:
        return canvas.convert("RGB")  # an edit keeps the base's own lettering
    draw = ImageDraw.Draw(canvas)
    title = _title(prompt)
    font = _font(max(12, size // 14))
    ink = colours[2]
    margin = size // 15
    shadow = (0, 0, 0, 120)
    draw.text(
        (margin + size // 300, size - margin * 2 + size // 300), title, font=font, fill=shadow
    )
    draw.text((margin, size - margin * 2), title, font=font, fill=(*ink, 255))
    return canvas.convert("RGB")


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


class ProceduralCoverArt:
    provider = "local-procedural"

    def __init__(self, size: int = 3000, max_base_pixels: int = 50_000_000) -> None:
        self.size = size
        self.max_base_pixels = max_base_pixels

    def generate(
        self, prompt: str, base: bytes | None = None, base_mime: str | None = None
    ) -> GeneratedImage:
        from PIL import Image, ImageOps

        base_image = None
        if base is not None:
            try:
                with Image.open(io.BytesIO(base), formats=["JPEG", "PNG"]) as im:
                    if im.size[0] * im.size[1] > self.max_base_pixels:
                        raise ImageGenerationFailed("The base image has too many pixels.")
                    im.load()
                    base_image = ImageOps.exif_transpose(im).convert("RGB")
            except ImageGenerationFailed:
                raise
            except Exception as e:
                raise ImageGenerationFailed(f"The base image could not be decoded: {e}") from None
        image = render(prompt, self.size, base_image)
        return GeneratedImage(
            data=_png(image),
            mime_type="image/png",
            provider=self.provider,
            model="local-procedural-v1",
            model_variant="procedural",
            image_size=f"{self.size}x{self.size}",
        )


class GeminiCoverArt:
    provider = "gemini"
    MODEL = "gemini-3.1-flash-image-preview"

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://generativelanguage.googleapis.com",
        model: str = MODEL,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self._client = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"x-goog-api-key": api_key},
        )

    def generate(
        self, prompt: str, base: bytes | None = None, base_mime: str | None = None
    ) -> GeneratedImage:
        parts: list[dict[str, Any]] = [{"text": prompt}]
        if base is not None:
            parts.append(
                {
                    "inline_data": {
                        "mime_type": base_mime or "image/png",
                        "data": base64.b64encode(base).decode("ascii"),
                    }
                }
            )
        body = {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"},
            },
        }
        try:
            resp = self._client.post(f"/v1beta/models/{self.model}:generateContent", json=body)
            resp.raise_for_status()
            payload = resp.json()
        except (httpx.HTTPError, ValueError) as e:
            raise ImageGenerationFailed(
                f"Gemini image generation failed: {type(e).__name__}"
            ) from None
        for candidate in payload.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                inline = part.get("inlineData") or part.get("inline_data")
                if inline and inline.get("data"):
                    return GeneratedImage(
                        data=base64.b64decode(inline["data"]),
                        mime_type=inline.get("mimeType") or inline.get("mime_type") or "image/png",
                        provider=self.provider,
                        model=self.model,
                        model_variant="nano_banana_2",
                        image_size="1K",
                    )
        raise ImageGenerationFailed("Gemini returned no image (the prompt may have been refused).")


def _generate_in_worker(
    size: int, max_base_pixels: int, prompt: str, base: bytes | None, base_mime: str | None
) -> tuple[str, Any]:
    try:
        art = ProceduralCoverArt(size, max_base_pixels).generate(prompt, base, base_mime)
        return "ok", art
    except ImageGenerationFailed as e:
        return "failed", str(e)


class IsolatedProceduralCoverArt:
    """:class:`ProceduralCoverArt` rendered in a worker process (the server's default).

    One 3000x3000 render holds ~200 MB of transient image buffers; they live and die in
    the worker, never in the API process.
    """

    provider = ProceduralCoverArt.provider

    def __init__(self, size: int = 3000, max_base_pixels: int = 50_000_000) -> None:
        self.size = size
        self.max_base_pixels = max_base_pixels

    def generate(
        self, prompt: str, base: bytes | None = None, base_mime: str | None = None
    ) -> GeneratedImage:
        from backline.adapters import workers

        try:
            status, payload = workers.call(
                _generate_in_worker, self.size, self.max_base_pixels, prompt, base, base_mime
            )
        except (workers.WorkerCrashed, workers.WorkerTimeout) as e:
            raise ImageGenerationFailed(f"The renderer failed ({type(e).__name__}).") from None
        if status == "ok":
            art: GeneratedImage = payload
            return art
        raise ImageGenerationFailed(str(payload))
