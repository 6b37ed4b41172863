"""Docstring coverage of the public API (issue #22): every public name of ``graphforge``,
``graphforge.nn``, ``nn.functional``, ``nn.init``, the Trainer and its callbacks and the CLI has a
docstring; the entry points a user starts from also have Args / Returns / Raises / Example
sections. The rules are in ``docstring_rules.py``."""
from __future__ import annotations

import argparse

import pytest

from docstring_rules import FULL_DOCS, full_doc_problems, problems, public_names

# Public names whose docstrings do not yet name every argument. Empty since issue #22 was closed;
# a listed name that becomes fully documented fails the test until it is taken off, so the list only
# shrinks. Nothing may be added to it: document the arguments instead.
ARGUMENTS_NOT_YET_DESCRIBED: frozenset = frozenset()

# Arguments added to names documented here that are not yet described (name -> argument names);
# ignored where the argument does not exist. Empty: nothing may be added to it either.
NEW_ARGUMENTS_NOT_YET_DESCRIBED: dict = {}

_PUBLIC = public_names()


@pytest.mark.parametrize("ns,name,obj", _PUBLIC, ids=[f"{ns}.{name}" for ns, name, _ in _PUBLIC])
def test_public_name_has_a_docstring(ns, name, obj):
    dotted = f"{ns}.{name}"
    found = problems(ns, name, obj, NEW_ARGUMENTS_NOT_YET_DESCRIBED.get(dotted, frozenset()))
    if dotted in ARGUMENTS_NOT_YET_DESCRIBED:
        assert found, f"{dotted} is documented now: take it off ARGUMENTS_NOT_YET_DESCRIBED"
    else:
        assert not found, "\n".join(found)


@pytest.mark.parametrize("dotted", FULL_DOCS)
def test_entry_point_has_args_returns_raises_example(dotted):
    found = full_doc_problems(dotted)
    assert not found, "\n".join(found)


def test_every_cli_option_has_help():
    from graphforge.cli import SUBCOMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS)
    missing = []
    for command, subparser in sub.choices.items():
        if not (subparser.description or subparser.format_usage()):
            missing.append(f"{command}: no description")
        for action in subparser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS and action.option_strings:
                missing.append(f"graphforge {command} {'/'.join(action.option_strings) or action.dest}: no help text")
    assert not missing, "\n".join(missing)


def test_the_checks_can_fail():
    """The rules flag what they should: a bare function, and one that skips its sections."""
    def bare(a, b):
        pass

    def partial(x, y):
        """Uses ``x`` only."""

    assert problems("here", "bare", bare) == ["here.bare: no docstring"]
    assert "does not mention the argument(s) y" in problems("here", "partial", partial)[0]
