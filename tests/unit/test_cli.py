"""The command line and build_config are held together: every option is a parameter."""
import inspect

import click

from websockify import config
from websockify.cli import command

OPTIONS = [p for p in command.params if isinstance(p, click.Option) and not p.is_eager]


def test_every_option_is_a_build_config_parameter_and_back():
    options = {p.name for p in OPTIONS}
    parameters = set(inspect.signature(config.build_config).parameters)
    positional = {"arguments", "wrap_command", "socket_activated"}
    assert parameters - positional == options


def test_the_command_line_shows_config_defaults():
    signature = inspect.signature(config.build_config).parameters
    with_defaults = [p for p in OPTIONS if p.show_default]
    assert len(with_defaults) >= 9
    for option in with_defaults:
        assert option.default == signature[option.name].default, option.name
    assert {p.name: p.default for p in OPTIONS}["max_connections"] == config.DEFAULT_MAX_CONNECTIONS
