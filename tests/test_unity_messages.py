"""rlkit.bridges.unity_messages: ML-Agents' communicator messages rebuilt from the serialized
descriptors its generated modules embed.

The generated modules only run on protobuf <= 3.20.3, so every test here checks the rebuilt
messages against references that need neither them nor protobuf:

* the field numbers and types of ML-Agents' protocol as the project's reference writes them
  (/work/shared/reference/ML-AGENTS.md section 5.2), transcribed below as this file's own table;
* the descriptors the generated modules build by hand (``FieldDescriptor(number=..., type=...)``
  calls, independent of the serialized bytes), read from their sources with ``ast``;
* protobuf wire encodings computed by hand with this file's own small encoder and decoder;
* a real gRPC Exchange between mlagents_envs' UnityEnvironment (the gRPC server, on the rebuilt
  classes) and a client playing Unity that sends and reads raw bytes.

Where the generated modules do import (protobuf 3.20.3) the tests also compare with them, as an
addition; nothing depends on it.
"""

from __future__ import annotations

import ast
import importlib
import json
import struct
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import google.protobuf
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from rlkit.bridges import unity_messages

PACKAGE = unity_messages.PACKAGE
ROOT = Path(__file__).resolve().parents[1]
PROTOBUF_MAJOR = int(google.protobuf.__version__.split(".")[0])

MODULES = {  # mlagents-envs 0.28.0's communicator_objects: module -> the .proto file it carries
    f"{stem}_pb2": f"mlagents_envs/communicator_objects/{stem}.proto"
    for stem in [
        "agent_action",
        "agent_info",
        "agent_info_action_pair",
        "brain_parameters",
        "capabilities",
        "command",
        "custom_reset_parameters",
        "demonstration_meta",
        "engine_configuration",
        "header",
        "observation",
        "space_type",
        "training_analytics",
        "unity_input",
        "unity_message",
        "unity_output",
        "unity_rl_initialization_input",
        "unity_rl_initialization_output",
        "unity_rl_input",
        "unity_rl_output",
        "unity_to_external",
    ]
}

# ML-AGENTS.md 5.2, message by message (names relative to the package `communicator_objects`).
# "repeated T" and "map<string, T>" as in .proto; every message listed here is listed whole.
REFERENCE = {
    "UnityMessageProto": {
        "header": (1, "HeaderProto"),
        "unity_output": (2, "UnityOutputProto"),
        "unity_input": (3, "UnityInputProto"),
    },
    "HeaderProto": {"status": (1, "int32"), "message": (2, "string")},
    "UnityOutputProto": {
        "rl_output": (1, "UnityRLOutputProto"),
        "rl_initialization_output": (2, "UnityRLInitializationOutputProto"),
    },
    "UnityInputProto": {
        "rl_input": (1, "UnityRLInputProto"),
        "rl_initialization_input": (2, "UnityRLInitializationInputProto"),
    },
    "UnityRLInitializationOutputProto": {
        "name": (1, "string"),
        "communication_version": (2, "string"),
        "log_path": (3, "string"),
        "brain_parameters": (5, "repeated BrainParametersProto"),
        "package_version": (7, "string"),
        "capabilities": (8, "UnityRLCapabilitiesProto"),
    },
    "UnityRLInitializationInputProto": {
        "seed": (1, "int32"),
        "communication_version": (2, "string"),
        "package_version": (3, "string"),
        "capabilities": (4, "UnityRLCapabilitiesProto"),
        "num_areas": (5, "int32"),
    },
    "UnityRLCapabilitiesProto": {
        name: (number, "bool")
        for number, name in enumerate(
            [
                "baseRLCapabilities",
                "concatenatedPngObservations",
                "compressedChannelMapping",
                "hybridActions",
                "trainingAnalytics",
                "variableLengthObservation",
                "multiAgentGroups",
            ],
            start=1,
        )
    },
    "UnityRLOutputProto": {
        "agentInfos": (2, "map<string, UnityRLOutputProto.ListAgentInfoProto>"),
        "side_channel": (3, "bytes"),
    },
    "UnityRLOutputProto.ListAgentInfoProto": {"value": (1, "repeated AgentInfoProto")},
    "UnityRLInputProto": {
        "agent_actions": (1, "map<string, UnityRLInputProto.ListAgentActionProto>"),
        "command": (4, "CommandProto"),
        "side_channel": (5, "bytes"),
    },
    "UnityRLInputProto.ListAgentActionProto": {"value": (1, "repeated AgentActionProto")},
    "AgentInfoProto": {
        "reward": (7, "float"),
        "done": (8, "bool"),
        "max_step_reached": (9, "bool"),
        "id": (10, "int32"),
        "action_mask": (11, "repeated bool"),
        "observations": (13, "repeated ObservationProto"),
        "group_id": (14, "int32"),
        "group_reward": (15, "float"),
    },
    "AgentActionProto": {
        "vector_actions_deprecated": (1, "repeated float"),
        "value": (4, "float"),
        "continuous_actions": (6, "repeated float"),
        "discrete_actions": (7, "repeated int32"),
    },
    "ObservationProto": {
        "shape": (1, "repeated int32"),
        "compression_type": (2, "CompressionTypeProto"),
        "compressed_data": (3, "bytes"),
        "float_data": (4, "ObservationProto.FloatData"),
        "compressed_channel_mapping": (5, "repeated int32"),
        "dimension_properties": (6, "repeated int32"),
        "observation_type": (7, "ObservationTypeProto"),
        "name": (8, "string"),
    },
    "ObservationProto.FloatData": {"data": (1, "repeated float")},
    "BrainParametersProto": {
        "vector_action_size_deprecated": (3, "repeated int32"),
        "vector_action_descriptions_deprecated": (5, "repeated string"),
        "vector_action_space_type_deprecated": (6, "SpaceTypeProto"),
        "brain_name": (7, "string"),
        "is_training": (8, "bool"),
        "action_spec": (9, "ActionSpecProto"),
    },
    "ActionSpecProto": {
        "num_continuous_actions": (1, "int32"),
        "num_discrete_actions": (2, "int32"),
        "discrete_branch_sizes": (3, "repeated int32"),
        "action_descriptions": (4, "repeated string"),
    },
}
REFERENCE_ENUMS = {
    "CommandProto": {"STEP": 0, "RESET": 1, "QUIT": 2},
    "CompressionTypeProto": {"NONE": 0, "PNG": 1},
    "ObservationTypeProto": {"DEFAULT": 0, "GOAL_SIGNAL": 1},
}

# FieldDescriptor.type numbers (descriptor.proto's FieldDescriptorProto.Type).
SCALARS = {2: "float", 5: "int32", 8: "bool", 9: "string", 12: "bytes"}
TYPE_MESSAGE, TYPE_ENUM = 11, 14


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, types.ModuleType]:
    return unity_messages.build_modules()


@pytest.fixture(scope="module")
def generated(rebuilt) -> dict[str, types.ModuleType] | None:
    """The generated modules where this protobuf runs them (3.20.3); None where it cannot."""
    try:
        modules = {name: importlib.import_module(name) for name in rebuilt}
    except Exception:  # protobuf >= 4: TypeError (upb) or AttributeError (pure Python)
        return None
    # Not the rebuilt ones that some other test's install() left in sys.modules.
    file = modules[f"{PACKAGE}.header_pb2"].DESCRIPTOR
    return modules if file.pool is descriptor_pool.Default() else None


def _pool_of(rebuilt) -> descriptor_pool.DescriptorPool:
    return rebuilt[f"{PACKAGE}.unity_message_pb2"].DESCRIPTOR.pool


def _repeated(field) -> bool:
    # FieldDescriptor.label is gone in protobuf 7; is_repeated is new in 6.
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def _relative(full_name: str) -> str:
    return full_name.removeprefix("communicator_objects.")


def _kind(field) -> str:
    """A field's type written as in .proto, from a descriptor."""
    if field.type == TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields
        return f"map<{SCALARS[key.type]}, {_relative(value.message_type.full_name)}>"
    if field.type == TYPE_MESSAGE:
        kind = _relative(field.message_type.full_name)
    elif field.type == TYPE_ENUM:
        kind = _relative(field.enum_type.full_name)
    else:
        kind = SCALARS[field.type]
    return f"repeated {kind}" if _repeated(field) else kind


# ---------------------------------------------------------------------------------------------
# The protobuf wire format, written here from the encoding spec (no google.protobuf).


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 go out as ten-byte two's complement
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def vint(number: int, value: int) -> bytes:  # int32, bool, enum
    return _key(number, 0) + _varint(value)


def ld(number: int, payload: bytes | str) -> bytes:  # string, bytes, message, packed
    data = payload.encode() if isinstance(payload, str) else payload
    return _key(number, 2) + _varint(len(data)) + data


def f32(number: int, value: float) -> bytes:
    return _key(number, 5) + struct.pack("<f", value)


def packed_floats(number: int, values) -> bytes:
    return ld(number, b"".join(struct.pack("<f", v) for v in values))


def packed_varints(number: int, values) -> bytes:
    return ld(number, b"".join(_varint(v) for v in values))


def decode(data: bytes) -> dict[int, list]:
    """Field number -> values in order: ints (varint), bytes (length-delimited), 4- or 8-byte
    bytes (fixed)."""
    fields: dict[int, list] = {}
    at = 0

    def varint() -> int:
        nonlocal at
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while at < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            size = varint()
            value, at = data[at : at + size], at + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


# ---------------------------------------------------------------------------------------------


def test_all_21_modules_are_rebuilt_from_the_bytes_in_their_sources(rebuilt, generated) -> None:
    blobs = unity_messages.serialized_files()
    assert sorted(blobs) == sorted(MODULES)
    assert sorted(rebuilt) == sorted(f"{PACKAGE}.{m}" for m in MODULES)
    for module, blob in blobs.items():
        proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
        assert (proto.name, proto.package, proto.syntax) == (
            MODULES[module],
            "communicator_objects",
            "proto3",
        )
        file = rebuilt[f"{PACKAGE}.{module}"].DESCRIPTOR
        assert file.name == MODULES[module] and file.serialized_pb == blob
        if generated is not None:  # the same bytes as the imported modules carry
            assert blob == generated[f"{PACKAGE}.{module}"].DESCRIPTOR.serialized_pb
    # A private pool: nothing lands in (or clashes with) protobuf's default pool.
    assert _pool_of(rebuilt) is not descriptor_pool.Default()


def test_field_numbers_and_types_are_those_of_the_protocol_reference(rebuilt) -> None:
    pool = _pool_of(rebuilt)
    for message, fields in REFERENCE.items():
        descriptor = pool.FindMessageTypeByName(f"communicator_objects.{message}")
        mine = {f.name: (f.number, _kind(f)) for f in descriptor.fields}
        assert mine == fields, message
    for enum, values in REFERENCE_ENUMS.items():
        descriptor = pool.FindEnumTypeByName(f"communicator_objects.{enum}")
        assert {v.name: v.number for v in descriptor.values} == values, enum
    # compressed_data and float_data are the two sides of one oneof.
    observation = pool.FindMessageTypeByName("communicator_objects.ObservationProto")
    (oneof,) = observation.oneofs
    assert sorted(f.name for f in oneof.fields) == ["compressed_data", "float_data"]
    # One service, one RPC: Exchange(UnityMessageProto) returns (UnityMessageProto).
    service = pool.FindServiceByName("communicator_objects.UnityToExternalProto")
    message = "communicator_objects.UnityMessageProto"
    methods = [(m.name, m.input_type.full_name, m.output_type.full_name) for m in service.methods]
    assert methods == [("Exchange", message, message)]


def _hand_built() -> tuple[dict, dict, dict]:
    """What the generated modules' hand-built descriptor calls say, read with ast from their
    sources (never executed): fields, enums and message options, keyed by full name."""
    variables: dict[str, str] = {}  # _OBSERVATIONPROTO -> communicator_objects.ObservationProto
    fields: dict[str, dict] = {}
    enums: dict[str, dict[str, int]] = {}
    options: dict[str, bytes] = {}
    links: list[tuple[str, str, str, str]] = []  # (message var, field, attribute, target var)
    oneofs: list[tuple[str, str, str]] = []  # (message var, oneof, field)

    def kwargs(call: ast.Call) -> dict[str, ast.expr]:
        return {k.arg: k.value for k in call.keywords}

    def options_bytes(node: ast.expr) -> bytes:
        if isinstance(node, ast.Call):  # _descriptor._ParseOptions(MessageOptions(), _b('8\001'))
            return ast.literal_eval(node.args[1].args[0]).encode("latin-1")
        return b""

    def subscript_name(node: ast.expr) -> tuple[str, str]:
        # _X.fields_by_name['f'] (or a module attribute before the .fields_by_name)
        assert isinstance(node, ast.Subscript)
        owner = node.value.value
        return (owner.attr if isinstance(owner, ast.Attribute) else owner.id), node.slice.value

    for module in MODULES:
        path = unity_messages._package_dir() / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call):
                call, target = statement.value, statement.targets[0]
                name = getattr(call.func, "attr", None)
                if name in ("Descriptor", "EnumDescriptor") and isinstance(target, ast.Name):
                    full = ast.literal_eval(kwargs(call)["full_name"])
                    variables[target.id] = full
                if name == "Descriptor":
                    options[full] = options_bytes(kwargs(call)["options"])
                    for node in kwargs(call)["fields"].elts:
                        k = kwargs(node)
                        fields[ast.literal_eval(k["full_name"])] = {
                            key: ast.literal_eval(k[key]) for key in ("number", "type", "label")
                        }
                elif name == "EnumDescriptor":
                    enums[full] = {
                        ast.literal_eval(kwargs(v)["name"]): ast.literal_eval(kwargs(v)["number"])
                        for v in kwargs(call)["values"].elts
                    }
            elif isinstance(statement, ast.Assign):  # links set after the classes' descriptors
                target = statement.targets[0]
                linked = ("message_type", "enum_type")
                if isinstance(target, ast.Attribute) and target.attr in linked:
                    owner, field = subscript_name(target.value)
                    value = statement.value
                    var = value.attr if isinstance(value, ast.Attribute) else value.id
                    links.append((owner, field, target.attr, var))
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
                # _X.oneofs_by_name['o'].fields.append(_X.fields_by_name['f'])
                call = statement.value
                if getattr(call.func, "attr", None) == "append":
                    owner, oneof = subscript_name(call.func.value.value)
                    oneofs.append((owner, oneof, subscript_name(call.args[0])[1]))
    for owner, field, attribute, var in links:
        fields[f"{variables[owner]}.{field}"][attribute] = variables[var]
    for owner, oneof, field in oneofs:
        fields[f"{variables[owner]}.{field}"]["oneof"] = oneof
    return fields, enums, options


def test_rebuilt_descriptors_match_the_hand_built_ones_in_the_sources(rebuilt, generated) -> None:
    # Every message, enum and field of all 21 files, nested and map-entry types included.
    fields, enums, options = _hand_built()
    assert (len(fields), len(enums), len(options)) == (105, 4, 25)
    mine_fields, mine_enums, mine_options = {}, {}, {}

    def visit(message) -> None:
        mine_options[message.full_name] = message.GetOptions().SerializeToString()
        for f in message.fields:
            entry = {"number": f.number, "type": f.type, "label": 3 if _repeated(f) else 1}
            if f.message_type is not None:
                entry["message_type"] = f.message_type.full_name
            if f.enum_type is not None:
                entry["enum_type"] = f.enum_type.full_name
            if f.containing_oneof is not None:
                entry["oneof"] = f.containing_oneof.name
            mine_fields[f.full_name] = entry
        for nested in message.nested_types:
            visit(nested)
        for enum in message.enum_types:
            mine_enums[enum.full_name] = {v.name: v.number for v in enum.values}

    for module in rebuilt.values():
        for message in module.DESCRIPTOR.message_types_by_name.values():
            visit(message)
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            mine_enums[enum.full_name] = {v.name: v.number for v in enum.values}
    assert mine_fields == fields
    assert mine_enums == enums
    assert mine_options == options
    # The two maps' entry types carry map_entry (MessageOptions field 7 = true); no other options.
    assert {k: v for k, v in options.items() if v} == {
        "communicator_objects.UnityRLInputProto.AgentActionsEntry": b"8\x01",
        "communicator_objects.UnityRLOutputProto.AgentInfosEntry": b"8\x01",
    }
    if generated is not None:  # and the live descriptors of the generated modules
        for module in generated.values():
            for message in module.DESCRIPTOR.message_types_by_name.values():
                for f in message.fields:
                    assert mine_fields[f.full_name]["number"] == f.number
                    assert mine_fields[f.full_name]["type"] == f.type


def test_rebuilt_modules_have_the_public_names_mlagents_envs_uses(rebuilt, generated) -> None:
    def get(short: str) -> types.ModuleType:
        return rebuilt[f"{PACKAGE}.{short}"]

    # Names mlagents_envs 0.28.0 imports from these modules (environment.py, rpc_utils.py,
    # rpc_communicator.py, the gRPC stub, side channels), with their values.
    assert (get("command_pb2").STEP, get("command_pb2").RESET, get("command_pb2").QUIT) == (0, 1, 2)
    assert get("command_pb2").CommandProto.Name(2) == "QUIT"
    observation = get("observation_pb2")
    assert (observation.NONE, observation.PNG, observation.DEFAULT, observation.GOAL_SIGNAL) == (
        0,
        1,
        0,
        1,
    )
    assert observation.ObservationProto.FloatData.DESCRIPTOR.full_name == (
        "communicator_objects.ObservationProto.FloatData"
    )
    assert get("space_type_pb2").SpaceTypeProto.items() == [("discrete", 0), ("continuous", 1)]
    output = get("unity_rl_output_pb2").UnityRLOutputProto
    assert output.ListAgentInfoProto.DESCRIPTOR.full_name.endswith("ListAgentInfoProto")
    assert output.__module__ == f"{PACKAGE}.unity_rl_output_pb2"
    for short, names in {
        "unity_message_pb2": ["UnityMessageProto"],
        "unity_input_pb2": ["UnityInputProto"],
        "unity_output_pb2": ["UnityOutputProto"],
        "unity_rl_input_pb2": ["UnityRLInputProto"],
        "unity_rl_initialization_input_pb2": ["UnityRLInitializationInputProto"],
        "unity_rl_initialization_output_pb2": ["UnityRLInitializationOutputProto"],
        "capabilities_pb2": ["UnityRLCapabilitiesProto"],
        "agent_info_pb2": ["AgentInfoProto"],
        "agent_action_pb2": ["AgentActionProto"],
        "brain_parameters_pb2": ["BrainParametersProto", "ActionSpecProto"],
        "header_pb2": ["HeaderProto"],
        "training_analytics_pb2": ["TrainingEnvironmentInitialized", "TrainingBehaviorInitialized"],
        "demonstration_meta_pb2": ["DemonstrationMetaProto"],
        "agent_info_action_pair_pb2": ["AgentInfoActionPairProto"],
    }.items():
        for name in names:
            cls = getattr(get(short), name)
            assert cls.DESCRIPTOR.full_name == f"communicator_objects.{name}"
            assert cls.__module__ == f"{PACKAGE}.{short}" and cls.__qualname__ == name
    if generated is not None:  # every public name of the generated modules is there too
        for name, real in generated.items():
            for attr, value in vars(real).items():
                if isinstance(value, type) and hasattr(value, "DESCRIPTOR"):
                    mine = getattr(rebuilt[name], attr)
                    assert mine.DESCRIPTOR.full_name == value.DESCRIPTOR.full_name
                elif isinstance(value, int) and not attr.startswith("_"):
                    assert getattr(rebuilt[name], attr) == value, (name, attr)


def _samples(modules: dict[str, types.ModuleType]) -> dict[str, object]:
    """Representative messages, from either set of classes."""

    def get(short: str) -> types.ModuleType:
        return modules[f"{PACKAGE}.{short}"]

    obs = get("observation_pb2")
    out = get("unity_message_pb2").UnityMessageProto()
    out.header.status = 200
    rl_output = out.unity_output.rl_output
    for key, ids in (("Ball?team=0", (1, 2)), ("A?team=1", (3,))):  # sorted when deterministic
        for i in ids:
            info = rl_output.agentInfos[key].value.add(id=i, reward=0.5 - i, done=i == 2)
            info.action_mask.extend([False, True, True])
            vector = info.observations.add(shape=[2], name="vec")
            vector.float_data.data.extend([0.25 * i, -1.0])
            image = info.observations.add(shape=[4, 4, 3], compression_type=obs.PNG)
            image.compressed_data = b"\x89PNG" + bytes([i])
            image.observation_type = obs.GOAL_SIGNAL
    rl_output.side_channel = bytes(range(5))
    init = out.unity_output.rl_initialization_output
    init.name, init.communication_version = "A", "1.5.0"
    init.capabilities.baseRLCapabilities = init.capabilities.multiAgentGroups = True
    brain = init.brain_parameters.add(brain_name="Ball?team=0", is_training=True)
    brain.action_spec.discrete_branch_sizes.extend([3, 2])
    brain.vector_action_space_type_deprecated = get("space_type_pb2").continuous

    inp = get("unity_message_pb2").UnityMessageProto()
    rl_input = inp.unity_input.rl_input
    rl_input.command = get("command_pb2").RESET
    rl_input.agent_actions["Ball?team=0"].value.add(
        continuous_actions=[0.5, -0.25], discrete_actions=[2, 1], value=1.5
    )
    inp.unity_input.rl_initialization_input.seed = -7
    inp.unity_input.rl_initialization_input.num_areas = 4
    header = get("header_pb2").HeaderProto(status=200, message="x")
    return {"output": out, "input": inp, "header": header}


def _agent_info(i: int) -> bytes:
    vector = packed_varints(1, [2]) + ld(4, packed_floats(1, [0.25 * i, -1.0])) + ld(8, "vec")
    image = packed_varints(1, [4, 4, 3]) + vint(2, 1) + ld(3, b"\x89PNG" + bytes([i])) + vint(7, 1)
    done = vint(8, 1) if i == 2 else b""
    return (
        f32(7, 0.5 - i)
        + done
        + vint(10, i)
        + packed_varints(11, [0, 1, 1])
        + ld(13, vector)
        + ld(13, image)
    )


def _branches(sizes) -> bytes:  # ActionSpecProto.discrete_branch_sizes, packed
    return packed_varints(3, sizes)


def _map_entry(number: int, key: str, value: bytes) -> bytes:
    return ld(number, ld(1, key) + ld(2, value))


EXPECTED = {  # _samples' messages, encoded by hand
    "header": b"\x08\xc8\x01\x12\x01x",
    "output": ld(1, vint(1, 200))
    + ld(
        2,
        ld(
            1,
            _map_entry(2, "A?team=1", ld(1, _agent_info(3)))
            + _map_entry(2, "Ball?team=0", ld(1, _agent_info(1)) + ld(1, _agent_info(2)))
            + ld(3, bytes(range(5))),
        )
        + ld(
            2,
            ld(1, "A")
            + ld(2, "1.5.0")
            + ld(5, vint(6, 1) + ld(7, "Ball?team=0") + vint(8, 1) + ld(9, _branches([3, 2])))
            + ld(8, vint(1, 1) + vint(7, 1)),
        ),
    ),
    # seed -7: a ten-byte varint; 1.5 = 0x3fc00000, 0.5 = 0x3f000000, -0.25 = 0xbe800000.
    "input": ld(
        3,
        ld(
            1,
            _map_entry(
                1,
                "Ball?team=0",
                ld(
                    1,
                    b"\x25\x00\x00\xc0\x3f"  # value = 1.5
                    b"\x32\x08\x00\x00\x00\x3f\x00\x00\x80\xbe"  # continuous_actions, packed
                    b"\x3a\x02\x02\x01",  # discrete_actions, packed
                ),
            )
            + vint(4, 1),
        )
        + ld(2, b"\x08\xf9\xff\xff\xff\xff\xff\xff\xff\xff\x01" + vint(5, 4)),
    ),
}


def test_the_hand_written_encoder_agrees_with_the_literal_bytes() -> None:
    assert vint(1, -7) == b"\x08\xf9\xff\xff\xff\xff\xff\xff\xff\xff\x01"
    assert vint(1, 200) + ld(2, "x") == EXPECTED["header"]
    assert f32(4, 1.5) == b"\x25\x00\x00\xc0\x3f"
    assert packed_varints(7, [2, 1]) == b"\x3a\x02\x02\x01"
    assert decode(EXPECTED["header"]) == {1: [200], 2: [b"x"]}


def test_rebuilt_messages_speak_the_hand_computed_wire_bytes(rebuilt, generated) -> None:
    mine = _samples(rebuilt)
    for key, message in mine.items():
        assert message.SerializeToString(deterministic=True) == EXPECTED[key], key
        parsed = type(message).FromString(EXPECTED[key])
        assert parsed == message, key
    back = type(mine["output"]).FromString(EXPECTED["output"])
    infos = back.unity_output.rl_output.agentInfos
    assert sorted(infos) == ["A?team=1", "Ball?team=0"]
    assert [a.id for a in infos["Ball?team=0"].value] == [1, 2]
    image = infos["A?team=1"].value[0].observations[1]
    assert image.WhichOneof("observation_data") == "compressed_data"
    assert image.compressed_data == b"\x89PNG\x03"
    brain = back.unity_output.rl_initialization_output.brain_parameters[0]
    assert brain.vector_action_space_type_deprecated == 1  # continuous
    inp = type(mine["input"]).FromString(EXPECTED["input"])
    assert inp.unity_input.rl_initialization_input.seed == -7
    if generated is not None:  # the generated classes write the same bytes and read them back
        for key, message in _samples(generated).items():
            assert message.SerializeToString(deterministic=True) == EXPECTED[key], key
            assert type(message).FromString(mine[key].SerializeToString()) == message, key


def _run(script: str) -> object:
    """Runs `script` in a fresh interpreter; returns the JSON it prints last (mlagents_envs
    logs to stdout as well)."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_install_replaces_the_generated_modules_exactly_when_they_fail() -> None:
    # Whether the generated modules work here is judged independently: all 21 import and build
    # this file's sample messages into the hand-computed bytes. protobuf 3.20.3: they do, and
    # install() leaves them in place. protobuf >= 4 with its default upb runtime: they cannot
    # import (TypeError: Descriptors cannot be created directly); with its pure-Python runtime
    # some import and then misbehave. Then install() puts the rebuilt ones in their place, and
    # mlagents_envs (its gRPC stub too) imports on them.
    here = Path(__file__).resolve().parent
    out = _run(
        f"""
        import importlib, json, sys
        sys.path.insert(0, {str(here)!r})
        from google.protobuf import descriptor_pool
        from google.protobuf.internal import api_implementation
        from rlkit.bridges import unity_messages
        import test_unity_messages as t
        names = [f"{{t.PACKAGE}}.{{m}}" for m in t.MODULES]
        try:
            samples = t._samples({{name: importlib.import_module(name) for name in names}})
            right = all(
                m.SerializeToString(deterministic=True) == t.EXPECTED[k] for k, m in samples.items()
            )
            generated = "right bytes" if right else "wrong bytes"
        except Exception as error:
            generated = type(error).__name__
        installed = unity_messages.install()
        assert unity_messages.install() is installed  # idempotent
        from mlagents_envs.environment import UnityEnvironment  # noqa: F401
        from mlagents_envs.communicator_objects import header_pb2, unity_to_external_pb2_grpc
        grpc_messages = vars(unity_to_external_pb2_grpc)[
            "mlagents__envs_dot_communicator__objects_dot_unity__message__pb2"
        ]
        samples = t._samples({{name: sys.modules[name] for name in names}})
        print(json.dumps([
            generated,
            installed,
            header_pb2.DESCRIPTOR.pool is descriptor_pool.Default(),
            all(m.SerializeToString(deterministic=True) == t.EXPECTED[k]
                for k, m in samples.items()),
            grpc_messages is sys.modules[f"{{t.PACKAGE}}.unity_message_pb2"],
            api_implementation.Type(),
        ]))
        """
    )
    generated, installed, default_pool, right_bytes, stub_sees_it, runtime = out
    assert right_bytes and stub_sees_it  # whichever modules are in place speak the protocol
    assert installed == (generated != "right bytes") and default_pool == (not installed)
    if PROTOBUF_MAJOR < 4:
        assert generated == "right bytes"
    elif runtime == "upb":
        assert generated == "TypeError"
    else:
        assert generated != "right bytes"


def test_install_stands_in_inside_mlagents_envs() -> None:
    # The generated modules made to fail (as on protobuf >= 4, whatever this protobuf is) and
    # never imported; UnityEnvironment runs a reset and a step on MockCommunicator.
    out = _run(
        """
        import importlib.abc, json, sys
        class Broken(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.startswith("mlagents_envs.communicator_objects.") and name.endswith("_pb2"):
                    raise TypeError("Descriptors cannot be created directly.")
        sys.meta_path.insert(0, Broken())
        from rlkit.bridges import unity_messages
        built = unity_messages.build_modules()
        assert not [m for m in sys.modules if m.endswith("_pb2") and "mlagents" in m]
        assert unity_messages.install() is True
        first = dict(sys.modules)
        assert unity_messages.install() is True  # idempotent
        assert all(sys.modules[name] is first[name] for name in built)
        from mlagents_envs.environment import UnityEnvironment
        from mlagents_envs.mock_communicator import MockCommunicator
        from mlagents_envs.communicator_objects import unity_output_pb2
        from mlagents_envs import environment
        assert environment.UnityOutputProto is unity_output_pb2.UnityOutputProto
        assert environment.STEP == 0 and environment.RESET == 1
        import pickle  # rpc_communicator passes messages through a Pipe; nested ones pickle too
        from mlagents_envs.communicator_objects import unity_rl_output_pb2 as rl_output
        nested = rl_output.UnityRLOutputProto.ListAgentInfoProto()
        nested.value.add(id=4)
        assert pickle.loads(pickle.dumps(nested)) == nested
        UnityEnvironment._get_communicator = staticmethod(
            lambda *args: MockCommunicator(discrete_action=True, num_agents=3)
        )
        env = UnityEnvironment(file_name=None)
        env.reset()
        decisions, terminals = env.get_steps("RealFakeBrain")
        spec = env.behavior_specs["RealFakeBrain"]
        env.set_actions("RealFakeBrain", spec.action_spec.random_action(2))
        env.step()
        env.close()
        ids = [decisions.agent_id.tolist(), terminals.agent_id.tolist()]
        print(json.dumps([*ids, decisions.obs[0].tolist()]))
        """
    )
    assert out == [[0, 1], [2], [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]]


def test_a_grpc_exchange_between_mlagents_envs_and_a_raw_bytes_unity_side() -> None:
    # mlagents_envs' UnityEnvironment (the gRPC server) runs on the rebuilt classes; a client
    # thread plays Unity with bytes encoded and decoded by this file's own wire helpers:
    # initialization, reset, one step, close.
    here = Path(__file__).resolve().parent
    out = _run(
        f"""
        import io, json, socket, struct, sys, threading, time
        sys.path.insert(0, {str(here)!r})
        import grpc, numpy as np
        from PIL import Image
        from rlkit.bridges import unity_messages
        assert unity_messages.install(force=True)
        from test_unity_messages import decode, f32, ld, packed_floats, packed_varints, vint
        from mlagents_envs.environment import UnityEnvironment
        from mlagents_envs.base_env import ActionTuple

        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        picture = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3) * 3
        png = io.BytesIO()
        Image.fromarray(picture).save(png, format="PNG")
        replies = []
        identity = lambda data: data

        def unity():
            while socket.socket().connect_ex(("localhost", port)):
                time.sleep(0.02)
            exchange = grpc.insecure_channel(f"localhost:{{port}}").unary_unary(
                "/communicator_objects.UnityToExternalProto/Exchange",
                request_serializer=identity,
                response_deserializer=identity,
            )
            header = ld(1, vint(1, 200))
            init = ld(1, "A") + ld(2, "1.5.0") + ld(7, "2.2.1") + ld(8, vint(1, 1))
            replies.append(exchange(header + ld(2, ld(2, init)), timeout=20))
            replies.append(exchange(header, timeout=20))
            for step in range(2):
                infos = b""
                for i in range(2):
                    vector = packed_varints(1, [3]) + ld(4, packed_floats(1, [i, step, -1.0]))
                    image = packed_varints(1, [6, 5, 3]) + vint(2, 1) + ld(3, png.getvalue())
                    info = f32(7, 0.5 * i + step) + vint(10, i) + ld(13, vector) + ld(13, image)
                    infos += ld(1, info)
                output = ld(1, ld(2, ld(1, "B?team=0") + ld(2, infos)))
                if step == 0:
                    brain = ld(7, "B?team=0") + ld(9, vint(1, 2))
                    output += ld(2, ld(5, brain))
                replies.append(exchange(header + ld(2, output), timeout=20))

        client = threading.Thread(target=unity)
        client.start()
        env = UnityEnvironment(file_name=None, base_port=port, seed=5, timeout_wait=20)
        env.reset()
        steps, _ = env.get_steps("B?team=0")
        assert np.allclose(steps.obs[1], picture / 255.0, atol=1e-6)
        env.set_actions("B?team=0", ActionTuple(continuous=steps.obs[0][:, :2] + 0.5))
        env.step()
        second, _ = env.get_steps("B?team=0")
        env.close()
        client.join(20)

        def one(fields, *path):  # the single value at a path of field numbers, undecoded
            for number in path:
                (fields,) = (decode(fields) if isinstance(fields, bytes) else fields)[number]
            return fields

        init, reset, step, close = (decode(r) for r in replies)
        initialization = decode(one(init, 3, 2))
        capabilities = decode(one(initialization, 4))
        rl_input = decode(one(step, 3, 1))
        actions = []
        for entry in rl_input[1]:  # the agent_actions map
            entry = decode(entry)
            for action in decode(entry[2][0])[1]:
                data = decode(action)[6][0]  # continuous_actions, packed floats
                floats = struct.unpack(f"<{{len(data) // 4}}f", data)
                actions.append([entry[1][0].decode(), list(floats)])
        print(json.dumps([
            one(init, 1, 1), one(initialization, 1), one(initialization, 2).decode(),
            one(initialization, 3).decode(), sorted(capabilities.items()),
            one(reset, 3, 1, 4), 4 in rl_input, actions,
            second.reward.tolist(), second.obs[0].tolist(), one(close, 1, 1),
        ]))
        """
    )
    assert out == [
        200,
        5,  # the seed
        "1.5.0",
        "0.28.0",
        [[n, [1]] for n in range(1, 8)],  # every capability true
        1,  # RESET
        False,  # STEP is 0, proto3's default, so the command field is absent
        [["B?team=0", [0.5, 0.5]], ["B?team=0", [1.5, 0.5]]],
        [1.0, 1.5],
        [[0.0, 1.0, -1.0], [1.0, 1.0, -1.0]],
        400,  # close
    ]


def test_serialized_files_reads_both_protoc_styles_without_running_the_module(
    tmp_path: Path,
) -> None:
    # protoc 3.x style (a str in `_b(...)` given as serialized_pb=) and current protoc style
    # (AddSerializedFile(b"...")), in modules that would raise if they were executed.
    blobs = unity_messages.serialized_files()
    header, command = blobs["header_pb2"], blobs["command_pb2"]
    old_style = f"_b({header.decode('latin-1')!r})"
    (tmp_path / "header_pb2.py").write_text(
        "raise RuntimeError('executed')\n"
        f"DESCRIPTOR = _descriptor.FileDescriptor(name='h', serialized_pb={old_style})\n"
    )
    (tmp_path / "command_pb2.py").write_text(
        "raise RuntimeError('executed')\n"
        f"DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile({command!r})\n"
    )
    assert unity_messages.serialized_files(tmp_path) == {
        "command_pb2": command,
        "header_pb2": header,
    }
    modules = unity_messages.build_modules(tmp_path)
    message = modules[f"{PACKAGE}.header_pb2"].HeaderProto(status=200, message="x")
    assert message.SerializeToString() == EXPECTED["header"]
    assert modules[f"{PACKAGE}.command_pb2"].QUIT == 2
    proto = descriptor_pb2.FileDescriptorProto.FromString(command)
    assert proto.name == "mlagents_envs/communicator_objects/command.proto"
