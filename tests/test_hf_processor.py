"""Where a HF teacher's input rule comes from: its `preprocessor_config.json` (`kdcache.teachers.hf_processor`)."""

from __future__ import annotations


def test_a_hub_teachers_processor_config_is_fetched_when_the_hub_answers(tmp_path, monkeypatch):
    """`from_pretrained` of the model never fetches preprocessor_config.json: kdcache fetches it itself when the hub
    answers (else the family's fallback stands in, and nothing is asked of an offline hub)."""
    import json

    import huggingface_hub
    from huggingface_hub import constants

    from kdcache import hub
    from kdcache.teachers import hf_processor
    from kdcache.teachers.hf_source import resolve_source

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    fetched = []

    def download(repo_id, filename, revision=None):
        fetched.append((repo_id, filename))
        path = tmp_path / filename
        path.write_text(json.dumps({"resample": 3, "size": {"height": 384, "width": 384}}))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    source = resolve_source("Intel/dpt-large")
    monkeypatch.setattr(hub, "hub_available", lambda: False)
    assert hf_processor.processor_config(source) is None and not fetched
    monkeypatch.setattr(hub, "hub_available", lambda: True)
    assert hf_processor.processor_config(source)["resample"] == 3
    assert fetched == [("Intel/dpt-large", "preprocessor_config.json")]
