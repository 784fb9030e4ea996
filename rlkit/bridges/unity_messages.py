"""ML-Agents' communicator messages, rebuilt for whichever protobuf is installed.

mlagents_envs 0.28.0 ships protoc 3.x output: every ``communicator_objects/*_pb2.py`` constructs
its descriptors by hand (``_descriptor.FileDescriptor(...)``, ``Descriptor(...)``,
``FieldDescriptor(...)``) and its classes through ``reflection.GeneratedProtocolMessageType``.
protobuf >= 4 refuses that: its default (upb) backend raises ``TypeError: Descriptors cannot be
created directly`` at the first descriptor; its pure-Python backend fails later (>= 5: an
``AttributeError`` resolving edition features) or, from 4.25 on, lets some modules import with
their maps acting as lists (the options they attach after building their classes come too late).

Each of those modules also passes the complete serialized ``FileDescriptorProto`` of its .proto
file as ``serialized_pb=``, and that is all current protoc output needs. This module reads those
bytes from the installed sources without executing them (``ast``; only the literal is evaluated),
adds them to a private ``DescriptorPool`` in dependency order and builds the classes with the
installed protobuf's public API (``message_factory.GetMessageClass``, or
``MessageFactory.GetPrototype`` on protobuf 3). :func:`install` then registers modules under the
generated modules' names in ``sys.modules`` (message classes with their nested classes as
attributes, top-level enum wrappers and value constants, ``DESCRIPTOR``) so that mlagents_envs,
including its unmodified gRPC stub, imports them. The wire format follows from the descriptors
alone, so these messages are byte-compatible with the generated ones and with Unity's C# side.
The private pool keeps them out of protobuf's default pool and symbol database (where a failed
import of the generated modules may have left a part of them). Nothing is copied out of, or
written into, the installed mlagents_envs.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import types
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import enum_type_wrapper

PACKAGE = "mlagents_envs.communicator_objects"

_installed: dict[str, types.ModuleType] = {}


def _package_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # imports only mlagents_envs/__init__ (a version)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _literal_bytes(node: ast.expr) -> bytes:
    # protoc 3.x wraps a str literal in its `_b` helper (latin-1 encode); newer output is bytes.
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        node = node.args[0]
    value = ast.literal_eval(node)
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


def serialized_files(directory: Path | None = None) -> dict[str, bytes]:
    """Module name (``"unity_message_pb2"``) -> serialized ``FileDescriptorProto``, read from the
    sources of the generated modules without importing them."""
    files = {}
    for path in sorted((directory or _package_dir()).glob("*_pb2.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call):
                continue
            literal = next((k.value for k in node.keywords if k.arg == "serialized_pb"), None)
            func = node.func
            if literal is None and getattr(func, "attr", None) == "AddSerializedFile":
                literal = node.args[0]
            if literal is not None:
                files[path.stem] = _literal_bytes(literal)
                break
        else:
            raise ValueError(f"{path} embeds no serialized FileDescriptorProto")
    return files


def _class_maker(pool: descriptor_pool.DescriptorPool):
    # GetMessageClass from protobuf 4.21 on (MessageFactory.GetPrototype is gone from 6.30).
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass
    return message_factory.MessageFactory(pool).GetPrototype


def _reduce_by_class(message):
    # protobuf pickles a nested message through the default symbol database, which does not know
    # the private pool; the class itself can be found by its module and qualified name.
    return type(message), (), message.__getstate__()


def build_modules(directory: Path | None = None) -> dict[str, types.ModuleType]:
    """Fresh modules, keyed by full module name, with the public contents of the generated ones;
    ``sys.modules`` is left alone."""
    blobs = serialized_files(directory)
    protos = {m: descriptor_pb2.FileDescriptorProto.FromString(b) for m, b in blobs.items()}
    module_of = {proto.name: m for m, proto in protos.items()}
    pool = descriptor_pool.DescriptorPool()
    message_class = _class_maker(pool)
    added: list[str] = []

    def add(module: str, stack: tuple[str, ...] = ()) -> None:
        if module in added:
            return
        if module in stack:
            raise ValueError(f"import cycle through {module}")
        for dependency in protos[module].dependency:
            add(module_of[dependency], (*stack, module))  # KeyError: a file outside the package
        pool.AddSerializedFile(blobs[module])
        added.append(module)

    modules = {}
    for module in sorted(protos):
        add(module)
    for module in added:
        name = f"{PACKAGE}.{module}"
        file = pool.FindFileByName(protos[module].name)
        namespace = types.ModuleType(name, f"Rebuilt from {protos[module].name} by {__name__}.")
        namespace.DESCRIPTOR = file

        def build(descriptor, qualname: str, module_name: str = name):
            cls = message_class(descriptor)
            cls.__module__, cls.__qualname__ = module_name, qualname
            if descriptor.containing_type is not None:
                cls.__reduce__ = _reduce_by_class
            for nested in descriptor.nested_types:
                setattr(cls, nested.name, build(nested, f"{qualname}.{nested.name}"))
            return cls

        for descriptor in file.message_types_by_name.values():
            setattr(namespace, descriptor.name, build(descriptor, descriptor.name))
        for enum in file.enum_types_by_name.values():
            setattr(namespace, enum.name, enum_type_wrapper.EnumTypeWrapper(enum))
            for value in enum.values:
                setattr(namespace, value.name, value.number)
        modules[name] = namespace
    return modules


def _probe(modules: dict[str, types.ModuleType]) -> bytes | None:
    """A message touching maps of messages, a oneof, enums and packed fields, serialized
    deterministically; None if it does not parse back to the same bytes."""

    def module(short: str) -> types.ModuleType:
        return modules[f"{PACKAGE}.{short}"]

    message = module("unity_message_pb2").UnityMessageProto()
    message.header.status = 200
    info = message.unity_output.rl_output.agentInfos["probe"].value.add(id=3, reward=-0.5)
    info.action_mask.extend([True, False])
    png = info.observations.add(shape=[2, 1], compressed_data=b"\x89PNG")
    png.compression_type = module("observation_pb2").PNG
    info.observations.add(shape=[2]).float_data.data.extend([1.5, -2.0])
    rl_input = message.unity_input.rl_input
    rl_input.command = module("command_pb2").QUIT
    rl_input.agent_actions["probe"].value.add(continuous_actions=[0.25], discrete_actions=[1, 2])
    message.unity_input.rl_initialization_input.capabilities.multiAgentGroups = True
    data = message.SerializeToString(deterministic=True)
    parsed = type(message).FromString(data)
    return data if parsed.SerializeToString(deterministic=True) == data else None


def _generated_modules_work(rebuilt: dict[str, types.ModuleType]) -> bool:
    # Importing is not enough: on pure-Python protobuf >= 4.25 some import with broken maps.
    try:
        generated = {name: importlib.import_module(name) for name in rebuilt}
        expected = _probe(rebuilt)
        return expected is not None and _probe(generated) == expected
    except Exception:  # TypeError (upb, C++), AttributeError (pure Python >= 5), ...
        return False


def install(force: bool = False) -> bool:
    """Make ``mlagents_envs.communicator_objects.*_pb2`` the rebuilt modules when the generated
    ones fail on this protobuf (they do not import, or a probe message built with them does not
    match the rebuilt classes byte for byte), or always with ``force``. Call it before anything
    imports mlagents_envs' environment or communicator. Idempotent; returns whether the rebuilt
    modules are in place."""
    if not _installed:
        rebuilt = build_modules()
        if not force and _generated_modules_work(rebuilt):
            return False
        _installed.update(rebuilt)
    package = importlib.import_module(PACKAGE)
    for name, module in _installed.items():
        sys.modules[name] = module
        setattr(package, name.rpartition(".")[2], module)
    return True
