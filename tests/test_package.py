"""The package's public surface: every advertised name resolves."""
import pytest

import bertedu


@pytest.mark.parametrize("name", bertedu.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(bertedu, name) is not None


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'BertForEverything'"):
        bertedu.BertForEverything  # noqa: B018
