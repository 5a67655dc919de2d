"""OpenAI-compatible chat translator for AI search (optional; settings key required).

Asks the model for a JSON object with the search's parameters only; the application's
``sanitize`` then drops anything the search would not accept.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from backline.domain.catalog_vocab import GENRES, MOODS

SYSTEM_PROMPT = (
    "Translate the user's request for music into catalog search parameters. Answer with one "
    "JSON object and nothing else. Allowed keys: genre (one of: {genres}), subgenre, "
    "additional, tempo, bpm_min (1-300), bpm_max (1-300), key (like 'C Min' or 'G Maj'), "
    "instrumental ('Yes' or 'No'), keywords, description (style, mood ({moods}), energy, "
    "instrumentation and use-case words, at most 200 characters). Omit what is not implied."
)


class LlmTranslator:
    provider = "openai-compatible"

    def __init__(self, base_url: str, api_key: str, model: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.timeout = timeout

    def translate(self, phrase: str) -> dict[str, Any]:
        prompt = SYSTEM_PROMPT.format(genres=", ".join(GENRES), moods=", ".join(MOODS).lower())
        response = httpx.post(
            f"{self.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {self.api_key}"},
            json={
                "model": self.model,
                "temperature": 0,
                "response_format": {"type": "json_object"},
                "messages": [
                    {"role": "system", "content": prompt},
                    {"role": "user", "content": phrase},
                ],
            },
            timeout=self.timeout,
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        data = json.loads(content)
        if not isinstance(data, dict):
            raise ValueError("the model did not answer with a JSON object")
        return data
