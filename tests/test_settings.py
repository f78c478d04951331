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


def test_a_value_read_while_the_settings_change_is_not_kept_after_the_change():
    """A reader racing a reload (a worker thread reading while a test or a site overrides
    settings) must not leave the old value cached for good: it would outlive every later
    override (seen as per-user caps that stayed off in a later test)."""
    from ciba.conf import CibaSettings

    values = {"MAX_PENDING_PER_USER": None}
    racing = {"on": True}

    class Settings(CibaSettings):
        @property
        def user_settings(self):
            return values

        def raw(self, name):
            value = super().raw(name)  # the old value is read ...
            if racing["on"]:
                racing["on"] = False
                values["MAX_PENDING_PER_USER"] = 5  # ... the settings change meanwhile ...
                self.reload()  # ... and the change's reload runs before the reader caches
            return value

    conf = Settings({"MAX_PENDING_PER_USER": 5})
    assert conf.MAX_PENDING_PER_USER is None  # what this one read returned
    assert conf.MAX_PENDING_PER_USER == 5  # not the stale value, cached after the reload
