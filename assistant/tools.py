"""Tools the model can call: declared once as typed methods, validated, timed, cancellable, confirmable.

A tool is an ``async`` method marked with :func:`tool`. Its name is the method's name, its description
the first paragraph of the docstring (written for the model), and its arguments' JSON Schema comes from
the signature through pydantic: ``Annotated[str, Field(description=...)]`` describes a parameter, a
``Literal`` becomes an enum, a default makes it optional. The same pydantic model validates the model's
arguments before the method runs, so a skill never sees bad input.

:class:`ToolRegistry` implements :class:`~assistant.ports.ToolRunner` and never raises into the turn:
every failure (malformed call, bad arguments, :class:`~assistant.errors.ToolError`, timeout, a bug in
the skill) becomes a small ``{"ok": false, "error": ...}`` result the model can read. Cancellation (the
turn was interrupted) propagates into the running tool, except for tools declared
``cancel_on_interrupt=False``, whose side effects must not be left half done.

Sensitive tools (buying things) are confirmed by the user first, as data (see :mod:`assistant.confirmation`).
A tool whose danger depends on what it acts on (a switch that may open the garage) is declared
``confirm_by_effect=True`` and calls :func:`ask_first` before it acts; the same spoken-yes rules apply.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import string
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .bus import Envelope
from .confirmation import CONFIRM_TOOL, Confirmations
from .errors import ConfirmationRequired, ToolError
from .events import AskRequested, RepeatRequested, SpeechEnded, ToolCallRequested, TurnStarted
from .ports import Clock, ModelToolCall, ToolResult, ToolSpec
from .redact import Redactor

_LOGGER = logging.getLogger(__name__)

_ATTRIBUTE = "__xiangyin_tool__"
_MAX_RESULT_CHARS = 4000
_CANCEL_GRACE_SECONDS = 1.0
"""How long a cancelled tool call may take to stop before it is left behind."""
_SHUTDOWN_GRACE_SECONDS = 1.0
"""How long a tool call that outlived its turn may still run once the daemon stops."""
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

ToolFunc = Callable[..., Awaitable[Mapping[str, Any]]]
F = TypeVar("F", bound=ToolFunc)

_APPROVED: contextvars.ContextVar[str | None] = contextvars.ContextVar("xiangyin_approved_action", default=None)
"""The action the user said yes to, while the registry runs the confirmed call; None otherwise."""


def ask_first(question: str, *, action: str, reason: str = "") -> None:
    """Stop a ``confirm_by_effect`` tool before it acts, unless the user already said yes to exactly ``action``.

    ``action`` names what would be done (services and entity ids), so a yes never approves something else:
    if the devices meant changed between the question and the yes, the tool asks again.
    Raises :class:`~assistant.errors.ConfirmationRequired`.
    """
    if _APPROVED.get() != action:
        raise ConfirmationRequired(question, action=action, reason=reason)


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """How a tool runs, as given to :func:`tool`."""

    timeout_seconds: float
    """Seconds after which the call is abandoned and reported as timed out."""
    cancel_on_interrupt: bool
    """False for side effects that must finish even when the user interrupts the turn."""
    sensitive: bool
    """True to ask the user for spoken confirmation before running."""
    confirm: str | None
    """Question to ask before a sensitive call, formatted with the arguments, e.g. ``Unlock {target}?``."""
    prepare: str | None = None
    """Name of an async method of the same object, called with the arguments before asking: it checks
    them (raising ToolError) and returns more placeholders for ``confirm``, e.g. the resolved device."""
    untrusted_output: bool = False
    """True when the result carries text from outside (web pages, reminder texts, device names and states):
    after it, the turn can no longer ask for a sensitive tool (a prompt injection could be speaking)."""
    confirm_by_effect: bool = False
    """True when the tool itself finds, as it runs, whether an action needs the user's yes (it calls
    :func:`ask_first` before acting); the yes is then asked for, and refused, under the same rules."""


def tool(
    *,
    timeout_seconds: float = 10.0,
    cancel_on_interrupt: bool = True,
    sensitive: bool = False,
    confirm: str | None = None,
    prepare: str | None = None,
    untrusted_output: bool = False,
    confirm_by_effect: bool = False,
) -> Callable[[F], F]:
    """Mark an async method as a tool the model may call (see :class:`ToolOptions` for the options)."""
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")
    sensitive = sensitive or confirm is not None or prepare is not None

    def mark(func: F) -> F:
        target: object = func  # keeps mypy from narrowing F away
        if not inspect.iscoroutinefunction(target):
            raise TypeError(f"tool {func.__qualname__} must be an async function")
        options = ToolOptions(
            timeout_seconds, cancel_on_interrupt, sensitive, confirm, prepare, untrusted_output, confirm_by_effect
        )
        setattr(func, _ATTRIBUTE, options)
        return func

    return mark


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A bound tool: what the model sees, how to validate its arguments, and what to run."""

    spec: ToolSpec
    """Name, description and JSON Schema for the model."""
    arguments: type[BaseModel]
    """Validates the model's arguments; the schema was made from it."""
    func: ToolFunc
    """The bound coroutine function to call with the validated arguments."""
    options: ToolOptions
    """Timeout, cancellation and confirmation."""
    owner: str = ""
    """Name of the skill that provides it."""
    prepare: ToolFunc | None = None
    """Bound ``options.prepare`` method, if any."""

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.spec.name


def define(func: ToolFunc, *, owner: str = "") -> ToolDefinition:
    """Build the definition of one function marked with :func:`tool` (bound, if it is a method)."""
    options = getattr(func, _ATTRIBUTE, None)
    if not isinstance(options, ToolOptions):
        raise TypeError(f"{func!r} is not marked with @tool")
    name = func.__name__
    if not name or not set(name) <= _NAME_OK or len(name) > 64:
        raise ValueError(f"tool name {name!r} must be 1-64 characters of A-Z, a-z, 0-9, _ or -")
    description = _description(func)
    if not description:
        raise ValueError(f"tool {name} needs a docstring: its first paragraph is what the model reads")
    arguments = _arguments_model(func)
    prepare: ToolFunc | None = None
    if options.prepare is not None:
        prepare = getattr(getattr(func, "__self__", None), options.prepare, None)
        if prepare is None or not inspect.iscoroutinefunction(prepare):
            raise TypeError(f"tool {name}: prepare={options.prepare!r} is not an async method of the same object")
    elif options.confirm is not None:
        missing = _placeholders(options.confirm) - set(arguments.model_fields)
        if missing:
            raise ValueError(f"tool {name}: confirm text names unknown arguments {sorted(missing)}")
    schema = clean_schema(arguments.model_json_schema())
    return ToolDefinition(ToolSpec(name, description, schema), arguments, func, options, owner, prepare)


def tools_of(obj: object, *, owner: str = "") -> list[ToolDefinition]:
    """Return the definitions of every ``@tool`` method of an object, in declaration order."""
    names: list[str] = []
    for klass in reversed(type(obj).__mro__):
        names.extend(attr for attr, value in vars(klass).items() if _is_tool(value) and attr not in names)
    # getattr on the object, so an override in a subclass decides whether a name is still a tool.
    return [define(getattr(obj, n), owner=owner) for n in names if _is_tool(getattr(obj, n, None))]


def _is_tool(value: object) -> bool:
    return isinstance(getattr(value, _ATTRIBUTE, None), ToolOptions)


def _description(func: ToolFunc) -> str:
    doc = inspect.getdoc(func) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _arguments_model(func: ToolFunc) -> type[BaseModel]:
    signature = inspect.signature(func)
    hints = get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {func.__name__}: *args and **kwargs cannot be described to the model")
        if parameter.name not in hints:
            raise TypeError(f"tool {func.__name__}: parameter {parameter.name} needs a type hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints[parameter.name], default)
    model: type[BaseModel] = create_model(f"{func.__name__}_arguments", __base__=_Arguments, **fields)
    return model


def clean_schema(schema: Any, *, in_properties: bool = False) -> Any:
    """Remove pydantic's ``title`` keys, which only repeat the names and cost the model tokens."""
    if isinstance(schema, dict):
        return {
            key: clean_schema(value, in_properties=key in ("properties", "$defs") and not in_properties)
            for key, value in schema.items()
            if in_properties or key != "title"
        }
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    return schema


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _describe_validation(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "arguments"
        message = "unknown argument" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{where}: {message}")
    return "invalid arguments: " + "; ".join(parts)


def _values(arguments: BaseModel) -> dict[str, Any]:
    return {k: getattr(arguments, k) for k in type(arguments).model_fields}


def error_result(call_id: str, name: str, message: str, **extra: Any) -> ToolResult:
    """A failure the model can read."""
    return ToolResult(call_id, name, {"ok": False, "error": message, **extra})


class ToolRegistry:
    """Every tool of the enabled skills; implements :class:`~assistant.ports.ToolRunner`.

    Tool names are unique: a duplicate is refused when it is added. Skills the registry was given are
    closed by :meth:`aclose`.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        confirm_seconds: float = 30.0,
        max_result_chars: int = _MAX_RESULT_CHARS,
        new_token: Callable[[], str] | None = None,
        redact: Redactor | None = None,
    ) -> None:
        self._clock = clock
        self._redact = redact or Redactor()
        """Masks the daemon's secrets in every result: the model may read a result aloud, or send it on."""
        self._tools: dict[str, ToolDefinition] = {}
        self._confirmations = Confirmations(clock, confirm_seconds, new_token)
        self._max_result_chars = max_result_chars
        self._detached: set[asyncio.Task[Any]] = set()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._turn_of_call: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        """Skills that were enabled but could not be loaded, with the reason (for ``check`` and status)."""

    # --- building ---------------------------------------------------------------------------------

    def add(self, definition: ToolDefinition) -> None:
        """Offer one tool to the model; raise ValueError if its name is taken."""
        name = definition.name
        if name == CONFIRM_TOOL or name in self._tools:
            other = "the registry" if name == CONFIRM_TOOL else self._tools[name].owner or "another tool"
            raise ValueError(f"tool {name!r} of {definition.owner or 'a skill'} is already provided by {other}")
        self._tools[name] = definition

    def check_names(self, definitions: list[ToolDefinition]) -> None:
        """Raise ValueError if any of these tool names is taken (or repeated)."""
        names = [d.name for d in definitions]
        clash = [n for n in names if n in self._tools or n == CONFIRM_TOOL or names.count(n) > 1]
        if clash:
            raise ValueError(f"tool names already taken: {', '.join(sorted(set(clash)))}")

    def add_all(self, definitions: list[ToolDefinition]) -> None:
        """Add several tools, all or none."""
        self.check_names(definitions)
        for definition in definitions:
            self.add(definition)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` in :meth:`aclose` (skills release their clients there)."""
        self._closers.append(closer)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the tools offered, the confirmation tool included when needed."""
        return tuple(spec.name for spec in self.specs())

    # --- ToolRunner -------------------------------------------------------------------------------

    def specs(self) -> tuple[ToolSpec, ...]:
        """Return the tools offered to the model."""
        specs = [d.spec for d in self._tools.values()]
        if any(d.options.sensitive or d.options.confirm_by_effect for d in self._tools.values()):
            specs.append(self._confirmations.spec)
        return tuple(specs)

    async def call(self, call: ModelToolCall) -> ToolResult:
        """Run one call; failures come back as results, cancellation propagates."""
        result = await self._call(call)
        if not self._redact:
            return result
        # An upstream's error may echo a token or a URL with a key; the model must never see it.
        return ToolResult(result.call_id, result.name, self._redact.data(dict(result.content)))

    async def _call(self, call: ModelToolCall) -> ToolResult:
        if call.error is not None:
            return error_result(call.call_id, call.name, f"the tool call could not be read: {call.error}")
        if call.name == CONFIRM_TOOL:
            return await self._confirm(call)
        definition = self._tools.get(call.name)
        if definition is None:
            known = ", ".join(sorted(self._tools)) or "none"
            return error_result(call.call_id, call.name, f"unknown tool {call.name!r}; the tools are: {known}")
        try:
            arguments = definition.arguments.model_validate(dict(call.arguments))
        except ValidationError as err:
            return error_result(call.call_id, call.name, _describe_validation(err))
        turn_id = self._turn_of_call.get(call.call_id)
        if definition.options.sensitive:
            if not self._confirmations.may_ask(turn_id):
                _LOGGER.warning("refused %s: not asked for by voice before any outside text", call.name)
                return error_result(
                    call.call_id,
                    call.name,
                    f"for safety, {call.name} can only be asked for by voice at the box, before anything read "
                    "from outside (web results, reminders, device states); nothing was done. Ask the user to say "
                    "it again",
                )
            extra: Mapping[str, Any] = {}
            if definition.prepare is not None:
                prepared = await self._attempt(call.call_id, definition, definition.prepare, arguments, shield=False)
                if isinstance(prepared, ToolResult):
                    return prepared
                if not isinstance(prepared, Mapping):
                    _LOGGER.error("tool %s: prepare returned %s, not a dict", call.name, type(prepared).__name__)
                    return error_result(call.call_id, call.name, f"{call.name} failed because of an internal error")
                extra = prepared
            question = self._question(definition, arguments, extra)
            pending = self._confirmations.ask(definition.name, arguments, question, turn_id)
            return ToolResult(call.call_id, call.name, pending)
        return await self._run(call.call_id, definition, arguments, turn_id=turn_id)

    def observe(self, envelope: Envelope) -> None:
        """Bus tap: learn who each tool call is for, and who spoke, read outside text or came in between.

        A sensitive tool is asked for only from a turn that heard the user before it read outside text; a
        confirmation is accepted only from the first turn after the question that heard the user, before
        it called any other tool, with no typed question, announcement or replay in between (see
        :mod:`assistant.confirmation`).
        """
        match envelope.event:
            # Every turn that does not listen starts from one of these (see the supervisor).
            case AskRequested() | RepeatRequested() | TurnStarted(trigger="announce"):
                self._confirmations.moved_on()
            case SpeechEnded(turn_id=str(turn_id)):
                self._confirmations.heard_speech(turn_id)
            case ToolCallRequested(turn_id=str(turn_id), call_id=call_id, tool=name):
                self._turn_of_call[call_id] = turn_id
                if len(self._turn_of_call) > 256:
                    del self._turn_of_call[next(iter(self._turn_of_call))]
                if name != CONFIRM_TOOL:
                    definition = self._tools.get(name)
                    reads_outside = definition is not None and definition.options.untrusted_output
                    self._confirmations.tool_called(turn_id, reads_outside=reads_outside)

    async def aclose(self) -> None:
        """Give tools that outlived their turn a moment to finish, stop the rest, then close the skills.

        The moment is short: the daemon must stop within systemd's stop timeout even if a device hangs.
        """
        if self._detached:
            _, late = await asyncio.wait(set(self._detached), timeout=_SHUTDOWN_GRACE_SECONDS)
            for task in late:
                _LOGGER.warning("stopping %s, still running at shutdown", task.get_name())
                task.cancel()
            if late:
                # Let them unwind before their skills' clients close under them.
                await asyncio.wait(late, timeout=_SHUTDOWN_GRACE_SECONDS / 2)
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                _LOGGER.exception("closing a skill failed")

    # --- running ----------------------------------------------------------------------------------

    async def _confirm(self, call: ModelToolCall) -> ToolResult:
        token = str(call.arguments.get("confirm_token", "")).strip()
        outcome = self._confirmations.take(token, self._turn_of_call.get(call.call_id))
        if isinstance(outcome, str):
            return error_result(call.call_id, call.name, outcome)
        definition = self._tools.get(outcome.tool)
        if definition is None:
            return error_result(call.call_id, call.name, f"the tool {outcome.tool!r} is no longer available")
        result = await self._run(call.call_id, definition, outcome.arguments, approved=outcome.action or "")
        return ToolResult(call.call_id, call.name, {**result.content, "action": definition.name})

    def _question(self, definition: ToolDefinition, arguments: BaseModel, extra: Mapping[str, Any]) -> str:
        template = definition.options.confirm
        values = {**_values(arguments), **extra}
        if template is None:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            return f"Do you really want me to run {definition.name}({shown})?"
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError):
            _LOGGER.error("tool %s: confirm text %r does not fit %s", definition.name, template, sorted(values))
            return f"Do you really want me to run {definition.name}?"

    async def _run(
        self,
        call_id: str,
        definition: ToolDefinition,
        arguments: BaseModel,
        *,
        turn_id: str | None = None,
        approved: str | None = None,
    ) -> ToolResult:
        """Run a call; ``approved`` is set when it runs on the user's yes (the action it approved, or "")."""
        shield = not definition.options.cancel_on_interrupt
        content = await self._attempt(call_id, definition, definition.func, arguments, shield=shield, approved=approved)
        if isinstance(content, ConfirmationRequired):
            return self._ask_by_effect(call_id, definition, arguments, content, turn_id, approved)
        if isinstance(content, ToolResult):
            return content
        return self._checked(call_id, definition.name, content)

    def _ask_by_effect(
        self,
        call_id: str,
        definition: ToolDefinition,
        arguments: BaseModel,
        request: ConfirmationRequired,
        turn_id: str | None,
        approved: str | None,
    ) -> ToolResult:
        """A tool stopped before an action that needs the user's yes: hold it and ask, or refuse."""
        name = definition.name
        if approved is not None:
            # The yes was for something else: the devices meant changed between the question and the answer.
            _LOGGER.warning("refused %s: confirmed %r, but it would now do %r", name, approved, request.action)
            return error_result(
                call_id, name, "what this would do changed since the user said yes; nothing was done, ask them again"
            )
        if not self._confirmations.may_ask(turn_id):
            _LOGGER.warning("refused %s (%s): not asked for by voice before any outside text", name, request.action)
            return error_result(
                call_id,
                name,
                f"for safety, this needs the user's spoken yes ({request.reason or request.question}), and it can "
                "only be asked for by voice at the box, before anything read from outside (web results, reminders, "
                "device states); nothing was done. Ask the user to say it again",
            )
        pending = self._confirmations.ask(name, arguments, request.question, turn_id, action=request.action)
        if request.reason:
            pending["why"] = request.reason
        return ToolResult(call_id, name, pending)

    async def _attempt(
        self,
        call_id: str,
        definition: ToolDefinition,
        func: ToolFunc,
        arguments: BaseModel,
        *,
        shield: bool,
        approved: str | None = None,
    ) -> Mapping[str, Any] | ToolResult | ConfirmationRequired:
        """Run ``func`` with the arguments under the tool's timeout; a failure comes back as an error result.

        The call runs in a task of its own and is waited for at most its timeout, so a tool that swallows
        its cancellation (some libraries do) still cannot hold the turn: it is left behind and tracked.
        A tool that stops to ask (``ConfirmationRequired``) comes back as that request.
        """
        name = definition.name
        timeout = definition.options.timeout_seconds
        # The task copies the context here: inside it, ask_first sees what the user approved, and only there.
        token = _APPROVED.set(approved)
        try:
            work: asyncio.Task[Mapping[str, Any]] = asyncio.ensure_future(func(**_values(arguments)))
        finally:
            _APPROVED.reset(token)
        work.set_name(f"tool {name}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            done, _ = await asyncio.wait({work}, timeout=timeout)
        except asyncio.CancelledError:
            if shield:
                # The side effect may already be on its way; let it finish, within what is left of its timeout.
                left = timeout - (loop.time() - started)
                expiry = loop.call_later(max(0.0, left), work.cancel)
                work.add_done_callback(lambda _: expiry.cancel())
                self._leave_behind(name, work)
            else:
                await self._cancel(name, work)
            raise
        if not done:
            _LOGGER.warning("tool %s timed out after %.1f s", name, timeout)
            await self._cancel(name, work)
            return error_result(call_id, name, f"{name} did not answer within {timeout:g} seconds")
        try:
            return work.result()
        except ConfirmationRequired as request:
            return request
        except ToolError as err:
            return error_result(call_id, name, str(err))
        except TimeoutError:
            _LOGGER.warning("tool %s timed out inside", name)
            return error_result(call_id, name, f"{name} did not answer within {timeout:g} seconds")
        except Exception:
            _LOGGER.exception("tool %s failed", name)
            return error_result(call_id, name, f"{name} failed because of an internal error")

    async def _cancel(self, name: str, work: asyncio.Task[Any]) -> None:
        """Cancel a call and wait briefly for it to stop; one that will not stop is left behind, tracked."""
        work.cancel()
        done, _ = await asyncio.wait({work}, timeout=_CANCEL_GRACE_SECONDS)
        if not done:
            _LOGGER.error("tool %s ignored its cancellation; leaving it behind", name)
            self._leave_behind(name, work)
        elif not work.cancelled() and work.exception() is not None:
            _LOGGER.debug("tool %s failed while being cancelled: %s", name, work.exception())

    def _leave_behind(self, name: str, work: asyncio.Task[Any]) -> None:
        """Keep a call that outlived its turn until it ends (aclose waits for it), then log how it went."""
        self._detached.add(work)
        work.add_done_callback(lambda t: self._finish_detached(name, t))

    def _finish_detached(self, name: str, task: asyncio.Task[Any]) -> None:
        self._detached.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not isinstance(error, ToolError | TimeoutError):
            _LOGGER.error("tool %s failed after its turn had moved on", name, exc_info=error)
        else:
            _LOGGER.info("tool %s finished after its turn had moved on", name)

    def _checked(self, call_id: str, name: str, content: Any) -> ToolResult:
        if not isinstance(content, Mapping):
            _LOGGER.error("tool %s returned %s instead of a dict", name, type(content).__name__)
            return error_result(call_id, name, f"{name} failed because of an internal error")
        result = {"ok": True, **content}
        try:
            text = json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError):
            _LOGGER.exception("tool %s returned something that is not JSON", name)
            return error_result(call_id, name, f"{name} failed because of an internal error")
        if len(text) > self._max_result_chars:
            _LOGGER.error("tool %s returned %d characters (limit %d)", name, len(text), self._max_result_chars)
            return error_result(call_id, name, f"{name} returned too much data")
        return ToolResult(call_id, name, json.loads(text))
