"""Building components from config dicts: option typos become ConfigErrors naming the option."""

import pytest

import babyvlm
from babyvlm.core.errors import ConfigError


def test_unknown_option_names_it_and_the_accepted_ones():
    with pytest.raises(ConfigError) as caught:
        babyvlm.build("connector", dict(type="mlp2x_gelu", in_features=2, out_features=3, hiden=4))
    message = str(caught.value)
    assert "connector 'mlp2x_gelu'" in message and "unknown option(s) 'hiden'" in message
    assert "Accepted options: in_features, out_features" in message


def test_missing_required_option_is_a_config_error():
    with pytest.raises(ConfigError, match="connector 'linear': missing a required argument: 'out_features'"):
        babyvlm.build("connector", "linear", in_features=2)


def test_options_reach_the_component():
    layer = babyvlm.build("connector", {"type": "linear", "in_features": 2}, out_features=5)
    assert tuple(layer(__import__("torch").zeros(1, 2)).shape) == (1, 5)
