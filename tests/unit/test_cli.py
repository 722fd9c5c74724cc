"""The command line and build_config are held together: every option is a parameter."""
import inspect

import click

from websockify import cli, config
from websockify.cli import command

OPTIONS = [p for p in command.params if isinstance(p, click.Option) and not p.is_eager]


def has_value(default: object) -> bool:
    """No default is None in click 8.1, a sentinel in later versions."""
    return isinstance(default, (str, int, float))


def test_every_option_is_a_build_config_parameter_and_back():
    options = {p.name for p in OPTIONS}
    parameters = set(inspect.signature(config.build_config).parameters)
    positional = {"arguments", "wrap_command", "socket_activated"}
    assert parameters - positional == options


def test_the_command_line_shows_config_defaults():
    signature = inspect.signature(config.build_config).parameters
    with_defaults = [p for p in OPTIONS if p.show_default is True]
    assert len(with_defaults) >= 9
    for option in with_defaults:
        assert option.default == signature[option.name].default, option.name
    # A default told in words is the behaviour without the option: it has no value.
    for option in (p for p in OPTIONS if isinstance(p.show_default, str)):
        assert signature[option.name].default is None and not has_value(option.default), option.name
    assert {p.name: p.default for p in OPTIONS}["max_connections"] == config.DEFAULT_MAX_CONNECTIONS


# -- --help: sections and defaults -------------------------------------------

def help_text() -> str:
    return command.get_help(click.Context(command, info_name="websockify", **command.context_settings))


def test_every_option_is_in_a_known_section():
    for option in OPTIONS:
        assert getattr(option, "section", None) in cli.SECTIONS[:-1], option.name
    # Only click's own --help and --version fall into the last section.
    assert [title for title, _ in cli.help_sections()][-1] == cli.OTHER
    assert {spec for spec, _ in dict(cli.help_sections())[cli.OTHER]} == {"--version", "-h, --help"}


def test_help_prints_one_section_per_group_in_order():
    text = help_text()
    positions = [text.index(f"\n{title}:\n") for title in cli.SECTIONS]
    assert positions == sorted(positions)
    assert "\nOptions:\n" not in text
    assert "websockify 6080 localhost:5900" in text  # the examples stay


def test_every_default_is_stated():
    for option in OPTIONS:
        if not option.is_flag and has_value(option.default):
            assert option.show_default is True, option.name
    rows = {spec.split()[0].rstrip(","): text for _, section in cli.help_sections() for spec, text in section}
    for name in ("--heartbeat", "--idle-timeout", "--timeout"):
        assert rows[name].endswith("[default: 0]"), rows[name]
    assert rows["--grace-period"].endswith("[default: 10]")
    assert rows["--ssl-version"].endswith("[default: default]") and "TLS 1.2" in rows["--ssl-version"]
    assert "x>=" not in help_text()  # click's range notation: the help says the limits in words


def test_help_lines_do_not_point_elsewhere():
    """Each line stands alone: a pip user has no README at hand."""
    rows = {spec.split()[0].rstrip(","): text for _, section in cli.help_sections() for spec, text in section}
    assert "README" not in help_text()
    assert "FILE.1" in rows["--record"] and "noVNC" in rows["--record"]
    assert config.DEFAULT_CERT in rows["--ssl-only"] and config.DEFAULT_CERT in rows["--verify-client"]
