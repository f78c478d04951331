import pytest
from django.test import override_settings

from ciba.backends.notifiers import LogNotifier
from ciba.conf import DEFAULTS, ciba_settings


def test_unset_keys_take_the_documented_defaults():
    with override_settings(CIBA={}):
        for key, default in DEFAULTS.items():
            assert ciba_settings.raw(key) == default


def test_dotted_paths_resolve_to_classes_once_and_follow_overrides():
    with override_settings(CIBA={}):
        assert ciba_settings.NOTIFIER_CLASSES == [LogNotifier]
        assert ciba_settings.NOTIFIER_CLASSES is ciba_settings.NOTIFIER_CLASSES
    with override_settings(CIBA={"NOTIFIER_CLASSES": []}):
        assert ciba_settings.NOTIFIER_CLASSES == []


def test_a_wrong_dotted_path_names_the_setting():
    with override_settings(CIBA={"USER_RESOLVER_CLASS": "nowhere.Resolver"}):
        with pytest.raises(ImportError, match="USER_RESOLVER_CLASS"):
            _ = ciba_settings.USER_RESOLVER_CLASS


def test_asking_for_a_setting_that_does_not_exist_is_an_error():
    with pytest.raises(AttributeError, match="Invalid CIBA setting"):
        _ = ciba_settings.NOT_A_SETTING


def test_misspelt_user_keys_are_listed():
    with override_settings(CIBA={"CALLBACK_ALLOW_HTTPS": True}):
        assert ciba_settings.unknown_keys() == ["CALLBACK_ALLOW_HTTPS"]


def test_every_setting_is_documented_in_the_settings_reference():
    from pathlib import Path

    reference = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    assert [key for key in DEFAULTS if f"`{key}`" not in reference] == []
