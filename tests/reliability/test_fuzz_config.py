"""Bad config files, fuzzed: whatever the file holds, loading it gives a ConfigError naming file and key.

The real loader reads each example from disk (YAML parsing, ${ENV} references and ``*_file`` secrets
included), so a broken file can only ever stop the daemon with exit status 2 and a message, never with a
traceback, a hang or a half-read configuration.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from assistant.cli import EXIT_CONFIG, main
from assistant.config import Settings, load_config
from assistant.errors import ConfigError
from assistant.skills import check_skills
from tests.reliability.fuzzing import FUZZ, junk, scalars


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves(annotation, (*prefix, name))
        else:
            yield (*prefix, name)


LEAVES = sorted(_leaves(Settings))
"""Every settable key of the tree, as paths of names (``("audio", "volume")``)."""
KNOWN_KEYS = sorted({part for leaf in LEAVES for part in leaf} | {f"{leaf[-1]}_file" for leaf in LEAVES})
SECTIONS = list(Settings.model_fields)

_SCRATCH = Path(tempfile.mkdtemp(prefix="xiangyin-fuzz-config-"))
_SECRETS = {
    "missing": _SCRATCH / "no-such-secret",
    "directory": _SCRATCH,
    "binary": _SCRATCH / "binary-secret",
    "empty": _SCRATCH / "empty-secret",
}
_SECRETS["binary"].write_bytes(b"\xff\xfe\x00token\x80")
_SECRETS["empty"].write_bytes(b"")

env_refs = st.builds(
    lambda before, name, after: f"{before}${{{name}}}{after}",
    st.text(max_size=5),
    st.sampled_from(["HOME_X", "UNSET_VARIABLE", "A", "TOKEN"])
    | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(["", "}", "${", "$"]),
)
secret_paths = st.sampled_from([str(p) for p in _SECRETS.values()] + ["", "~nobody/x", "/dev/null/x", "\x00"])
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=10) | st.integers() | st.booleans() | st.none()
values = st.recursive(
    scalars | env_refs | secret_paths,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)
documents = values | st.dictionaries(st.sampled_from(SECTIONS) | keys, values, max_size=6)

HOSTILE = {
    "nested-5000-deep": "[" * 5000 + "]" * 5000,
    "mappings-3000-deep": "a: " + "{b: " * 3000 + "1" + "}" * 3000,
    "duplicate-key": "audio:\n  chunk_ms: 80\n  chunk_ms: 90\n",  # which one was meant?
    "duplicate-section": "audio: {volume: 0.5}\naudio: {volume: 0.6}\n",
    "5000-digit-number": "audio:\n  chunk_ms: " + "9" * 5000 + "\n",  # more than Python converts
    "alias-containing-itself": "a: &a [*a]\n",
    "billion-laughs": "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9))
    + "skills: {clock: {x: *l8}}\n",
    "python-object-tag": "!!python/object:os.system {}\n",
    "tab-indent": "mqtt:\n\tport: 1\n",
    "binary-section": "persona: !!binary aGVsbG8=\n",
    "date-for-a-number": "audio: {volume: 2001-12-14}\n",
    "list-as-key": "? [a, b]\n: c\n",
    "two-documents": "---\na: 1\n---\nb: 2\n",
    "secret-twice": "mqtt: {password_file: /nonexistent, password: x}\n",
}


def _load(tmp: Path, content: bytes, env: dict[str, str]) -> Settings | None:
    path = tmp / "config.yaml"
    path.write_bytes(content)
    try:
        settings = load_config(path, env=env)
    except ConfigError as err:
        message = str(err)
        assert message.startswith(str(path)), message
        assert all(line.startswith(str(path)) for line in message.splitlines()), message
        return None
    # What ``xiangyin check`` does next: each skill validates its own section.
    assert all(isinstance(problem, str) for problem in check_skills(settings.skills))
    return settings


@pytest.fixture(scope="module")
def tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="xiangyin-fuzz-config-files-"))


@FUZZ
@given(document=documents, env=st.dictionaries(st.sampled_from(["HOME_X", "A", "TOKEN"]), st.text(max_size=8)))
@example(document={"mqtt": {"password_file": str(_SECRETS["binary"])}}, env={})
@example(document={"home_assistant": {"token_file": str(_SECRETS["directory"])}}, env={})
@example(document={"audio": {"volume": 10**400}}, env={})
@example(document={"wake": {"words": [{"model": float("nan")}]}}, env={})
@example(document={"mqtt": {"password_file": "\x00"}}, env={})
@example(document={"allowed_clients_file": "\r"}, env={})
def test_any_yaml_tree_loads_or_is_a_config_error_naming_the_file(
    tmp: Path, document: Any, env: dict[str, str]
) -> None:
    _load(tmp, yaml.safe_dump(document, allow_unicode=True).encode("utf-8"), env)


@FUZZ
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(lambda s: s.encode("utf-8")))
@example(content="audio: {volume: 0.5}".encode("utf-16"))
@example(content="persona: {name: 小音}".encode("gb18030"))
@example(content=b"persona: {name: \xff\xfe}\n")
def test_random_bytes_are_a_config_error_naming_the_file(tmp: Path, content: bytes) -> None:
    _load(tmp, content, {})


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_yaml_is_refused_quickly_with_a_clear_message(tmp: Path, text: str) -> None:
    path = tmp / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value).startswith(str(path))


@FUZZ
@given(leaf=st.sampled_from(LEAVES), value=junk(8), as_file=st.booleans())
@example(leaf=("audio", "chunk_ms"), value=10**400, as_file=False)
@example(leaf=("mqtt", "password"), value=None, as_file=True)
@example(leaf=("persona", "timezone"), value="Asia/" + "x" * 5000, as_file=False)
def test_a_bad_value_anywhere_names_its_dotted_key(tmp: Path, leaf: tuple[str, ...], value: Any, as_file: bool) -> None:
    """One wrong value in an otherwise good file: the message names the file and that key."""
    *parents, name = leaf
    if as_file:
        name, value = f"{name}_file", str(_SECRETS["missing"])
    document: dict[str, Any] = {}
    node = document
    for parent in parents:
        node = node.setdefault(parent, {})
    node[name] = value
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        load_config(path, env={})
    except ConfigError as err:
        message = str(err)
        assert message.startswith(str(path)) and leaf[0] in message and name in message, message


def test_xiangyin_check_exits_2_with_the_message(tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp / "check.yaml"
    path.write_text("audio:\n  chunk_ms: 80\n  chunk_ms: 90\n", encoding="utf-8")
    assert main(["check", "--config", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"config error: {path}: ") and "audio.chunk_ms" in err
