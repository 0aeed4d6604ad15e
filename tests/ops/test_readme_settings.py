"""The README's two settings tables say what the code does.

"Settings (environment)" lists exactly the variables `load_settings` reads, each with its
default and minimum as webhooks_api/config.py applies them. "Process settings" lists
exactly the variables of the Procfile's lines and of the run command (webhooks_dev/stack.py)
that config.py does not read, plus the address the Procfile binds, each with the default
its reader applies. Both are checked by what the code does or declares, not against a copy
of the list kept here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flower.options import options as flower_options

from webhooks_api.config import ConfigError, load_settings
from webhooks_dev import stack

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PROCFILE = (ROOT / "Procfile").read_text()
NOT_A_NUMBER = "-999999999"
BIND_ADDRESS = "bind address"
# The run command extends PATH (the venv's bin first) for the processes; not a setting.
PASSED_THROUGH = {"PATH"}
# A production deployment's minimum, for the defaults that differ in production.
PRODUCTION = {"WEBHOOKS_ENV": "production", "DATABASE_URL": "postgresql://db/webhooks",
              "CELERY_BROKER_URL": "redis://broker:6379/0",
              "WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode()}


def readme_table(heading: str) -> dict[str, list[str]]:
    """The rows of the table under `## heading`, by their first cell (a `NAME` or text)."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| variable", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        name = cells[0].strip("`*")
        assert name not in rows, f"{name} has two rows"
        rows[name] = cells[1:]
    assert rows, f"no table under {heading!r}"
    return rows


def literal(cell: str) -> str | None:
    """The first `code` value of a cell; None for a cell that only describes."""
    found = re.search(r"`([^`]*)`", cell)
    return found.group(1) if found else None


def production_literal(cell: str) -> str | None:
    found = re.search(r"`([^`]*)` in production", cell)
    return found.group(1) if found else None


class _Recording(Mapping):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def get(self, name, default=None):
        self.asked.add(name)
        return default

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


def names_config_reads() -> set[str]:
    environ = _Recording()
    load_settings(environ)
    return environ.asked


def refusal(name: str, value: str) -> str:
    try:
        load_settings({name: value})
    except ConfigError as error:
        return str(error)
    return ""


def test_settings_table_lists_what_config_reads():
    rows = readme_table("Settings (environment)")
    read = names_config_reads()
    assert sorted(set(read) - set(rows)) == [], "read by config.py, missing from the README"
    assert sorted(set(rows) - set(read)) == [], "in the README, not read by config.py"


@pytest.mark.parametrize("name", sorted(names_config_reads()))
def test_settings_table_default_and_minimum_are_configs(name):
    default_cell, minimum_cell, _meaning = readme_table("Settings (environment)")[name]
    error = refusal(name, NOT_A_NUMBER)
    minimum = re.search(r"must be at least (\d+)", error)
    # An integer, boolean or choice has a default to write down; a URL, key or path has none.
    typed = minimum or re.search(r"must be (a boolean|one of)", error)
    documented = literal(default_cell)
    if typed and documented is None:  # an optional number: unset is not any value
        assert default_cell == "none", f"{name}: the default is a value, write it as `code`"
        assert load_settings({name: minimum.group(1)}) != load_settings({})
    if documented is not None:
        assert load_settings({name: documented}) == load_settings({}), \
            f"{name}: `{documented}` is not the default"
    if (in_production := production_literal(default_cell)) is not None:
        assert load_settings({**PRODUCTION, name: in_production}) == load_settings(PRODUCTION), \
            f"{name}: `{in_production}` is not the production default"
    assert literal(minimum_cell) == (minimum.group(1) if minimum else None), \
        f"{name}: config.py refuses {NOT_A_NUMBER} with {error!r}"


def procfile_settings() -> dict[str, str]:
    """`${NAME:-default}` of the Procfile's lines, and the address its servers bind, when
    that is written out rather than a setting; `$$` is the shell's pid."""
    lines = "\n".join(line for line in PROCFILE.splitlines() if not line.startswith("#"))
    found = {name: default.replace("$$", "<pid>")
             for name, default in re.findall(r"\$\{(\w+):-([^}]*)\}", lines)}
    fixed = {address for address in re.findall(r"--bind[ =]([^:\s]+):|--address=(\S+)", lines)
             for address in address if address and "$" not in address}
    assert len(fixed) <= 1, f"the Procfile binds several addresses: {fixed}"
    if fixed:
        found[BIND_ADDRESS] = fixed.pop()
    return found


def run_command_settings() -> dict[str, str | None]:
    """Every `env.get(NAME[, default])` and `env.setdefault(NAME, default)` of the run
    command, its default evaluated in the module (None: no default written)."""
    found = {}
    for node in ast.walk(ast.parse(Path(stack.__file__).read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "env"
                and node.func.attr in ("get", "setdefault")
                and node.args and isinstance(node.args[0], ast.Constant)):
            default = (eval(compile(ast.Expression(node.args[1]), "stack.py", "eval"),  # noqa: S307
                            vars(stack)) if len(node.args) > 1 else None)
            found[node.args[0].value] = None if default is None else str(default)
    return found


def same_default(documented: str, code: str) -> bool:
    """Equal, or the same path (the README writes paths relative to the checkout)."""
    return documented == code or (ROOT / documented).resolve() == Path(code).resolve()


def test_process_settings_table_is_the_procfile_and_the_run_command():
    rows = readme_table("Process settings")
    config_names = names_config_reads()
    procfile, run_command = procfile_settings(), run_command_settings()
    expected = (set(procfile) | set(run_command)) - config_names - PASSED_THROUGH
    # Flower reads its own FLOWER_* environment: such a row is a Flower option.
    flower_own = {name for name in rows if name.startswith("FLOWER_") and name not in expected
                  and name.removeprefix("FLOWER_").lower() in flower_options}
    assert sorted(expected - set(rows)) == [], "read by the Procfile or the run command, " \
                                               "missing from the README"
    assert sorted(set(rows) - expected - flower_own) == [], "in the README, read by neither"

    for name in sorted(expected):
        default_cell, read_by, _meaning = rows[name]
        documented = literal(default_cell)
        readers = []
        if name in procfile:
            readers.append("Procfile")
            assert documented == procfile[name], f"{name}: the Procfile's default is " \
                                                 f"{procfile[name]}"
        if name in run_command:
            readers.append("./scripts/run")
            if run_command[name] is not None:
                assert documented is not None and same_default(documented, run_command[name]), \
                    f"{name}: the run command's default is {run_command[name]}"
            else:
                assert documented is None, f"{name}: the run command writes no default"
        assert [literal(part) for part in read_by.split(", ")] == readers, \
            f"{name} is read by {readers}"
    for name in flower_own:
        assert literal(rows[name][1]) == "Flower", f"{name} is read by Flower itself"
