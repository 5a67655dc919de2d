"""The stored-file copies kept by the release submission path stay current."""

from __future__ import annotations

import base64

from backline.application.release_files import UploadedReleaseFiles
from backline.infra.container import Container
from tests.uploads_helpers import image_bytes, wav_bytes, with_riff_info


def test_cached_files_see_later_detection_and_stay_private(container: Container) -> None:
    c = container
    owner = c.accounts.register("files-cache@example.com", "correct horse battery staple", "F")
    other = c.accounts.register("files-other@example.com", "correct horse battery staple", "O")
    cover = base64.b64encode(image_bytes(3000, 3000)).decode()
    ai = base64.b64encode(with_riff_info(wav_bytes(1.0, seed=2), {"ISFT": "Suno"})).decode()
    cov = c.uploads.upload_inline(owner.account_id, "coverArt", cover, "c.png", "image/png")
    gen = c.uploads.upload_inline(owner.account_id, "audio", ai, "ai.wav", "audio/wav")
    files = UploadedReleaseFiles(c.uploads)
    urls = [cov.file_url, gen.file_url]

    first, _ = files.facts_many(owner.account_id, urls)
    assert first[gen.file_url] is not None
    assert first[gen.file_url].detection_status is None
    if not c.settings.is_sqlite:  # one query on PostgreSQL, with kept copies
        assert len(files.files_cache) == 2

    c.uploads.detect(owner.account_id, gen.file_url)  # a new event after the copy was kept
    second, _ = files.facts_many(owner.account_id, urls)
    again, _ = files.facts_many(owner.account_id, urls)
    for facts in (second, again):
        audio = facts[gen.file_url]
        assert audio is not None
        assert audio.detection_status is not None
        assert audio.contains_ai is True
        assert facts[cov.file_url] == first[cov.file_url]

    # Someone else's view of the same URLs: no such file, cached or not.
    theirs, _ = files.facts_many(other.account_id, urls)
    assert theirs == {cov.file_url: None, gen.file_url: None}
