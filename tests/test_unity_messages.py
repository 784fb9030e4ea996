"""rlkit.bridges.unity_messages: ML-Agents' communicator messages rebuilt from the serialized
descriptors its generated modules embed. On this venv's protobuf (3.20.3) the generated modules
still work, so they are the reference: the rebuilt classes must describe the same messages, speak
the same bytes, and stand in for them inside mlagents_envs, over gRPC too. A separate process
plays the newer protobuf's part by making the generated modules fail to import."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, text_format

from rlkit.bridges import unity_messages

PACKAGE = unity_messages.PACKAGE
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, types.ModuleType]:
    return unity_messages.build_modules()


@pytest.fixture(scope="module")
def generated(rebuilt: dict[str, types.ModuleType]) -> dict[str, types.ModuleType]:
    return {name: importlib.import_module(name) for name in rebuilt}


def _enum(enum) -> tuple:
    return enum.full_name, tuple((v.name, v.number, v.index) for v in enum.values)


def _message(message) -> tuple:
    fields = tuple(
        (
            f.name,
            f.full_name,
            f.number,
            f.type,
            f.cpp_type,
            f.label,
            f.has_default_value,
            None if f.label == f.LABEL_REPEATED else f.default_value,
            f.message_type.full_name if f.message_type else None,
            f.enum_type.full_name if f.enum_type else None,
            f.containing_oneof.name if f.containing_oneof else None,
            f.GetOptions().SerializeToString(),
        )
        for f in message.fields
    )
    return (
        message.full_name,
        fields,
        tuple(o.name for o in message.oneofs),
        message.GetOptions().SerializeToString(),
        tuple(_message(n) for n in message.nested_types),
        tuple(_enum(e) for e in message.enum_types),
    )


def _file(file) -> tuple:
    services = tuple(
        (
            s.full_name,
            tuple((m.name, m.input_type.full_name, m.output_type.full_name) for m in s.methods),
        )
        for s in file.services_by_name.values()
    )
    return (
        file.name,
        file.package,
        tuple(d.name for d in file.dependencies),
        tuple(_message(m) for m in file.message_types_by_name.values()),
        tuple(_enum(e) for e in file.enum_types_by_name.values()),
        services,
        file.GetOptions().SerializeToString(),
    )


def test_all_21_modules_are_rebuilt_from_the_bytes_in_their_sources(generated, rebuilt) -> None:
    # The bytes come from parsing the sources, and equal what the imported modules carry.
    blobs = unity_messages.serialized_files()
    assert len(blobs) == len(rebuilt) == 21
    for short, blob in blobs.items():
        assert blob == generated[f"{PACKAGE}.{short}"].DESCRIPTOR.serialized_pb
    # A private pool: nothing lands in (or clashes with) the default pool of the generated ones.
    file = rebuilt[f"{PACKAGE}.unity_message_pb2"].DESCRIPTOR
    assert file.pool is not descriptor_pool.Default()


def test_rebuilt_descriptors_match_the_hand_built_ones(generated, rebuilt) -> None:
    # The generated modules' hand-built Descriptor objects are independent of the bytes: names,
    # numbers, types, labels, defaults, oneofs, nested and map-entry types, enum values,
    # options and the service all agree.
    for name, module in rebuilt.items():
        assert _file(module.DESCRIPTOR) == _file(generated[name].DESCRIPTOR), name


def test_rebuilt_modules_have_the_public_names_of_the_generated_ones(generated, rebuilt) -> None:
    for name, real in generated.items():
        mine = rebuilt[name]
        for attr, value in vars(real).items():
            if isinstance(value, type) and hasattr(value, "DESCRIPTOR"):  # message classes
                cls = getattr(mine, attr)
                assert cls.DESCRIPTOR.full_name == value.DESCRIPTOR.full_name
                assert cls.__module__ == name
                for nested in value.DESCRIPTOR.nested_types:  # e.g. ListAgentInfoProto
                    assert getattr(cls, nested.name).DESCRIPTOR.full_name == nested.full_name
            elif type(value).__name__ == "EnumTypeWrapper":  # CommandProto, SpaceTypeProto, ...
                assert getattr(mine, attr).items() == value.items()
            elif isinstance(value, int) and not attr.startswith("_"):  # STEP, RESET, PNG, ...
                assert getattr(mine, attr) == value, (name, attr)
    observation = rebuilt[f"{PACKAGE}.observation_pb2"]
    assert (observation.NONE, observation.PNG, observation.GOAL_SIGNAL) == (0, 1, 1)
    assert rebuilt[f"{PACKAGE}.command_pb2"].CommandProto.Name(2) == "QUIT"


def _samples(modules: dict[str, types.ModuleType]) -> dict[str, object]:
    """The same representative messages, built from either set of classes."""

    def get(short: str) -> types.ModuleType:
        return modules[f"{PACKAGE}.{short}"]

    obs = get("observation_pb2")
    out = get("unity_message_pb2").UnityMessageProto()
    out.header.status = 200
    init = out.unity_output.rl_initialization_output
    init.name, init.communication_version, init.package_version = "A", "1.5.0", "2.2.1-exp.1"
    init.capabilities.baseRLCapabilities = init.capabilities.multiAgentGroups = True
    brain = init.brain_parameters.add(brain_name="Ball?team=0", is_training=True)
    brain.action_spec.num_discrete_actions = 2
    brain.action_spec.discrete_branch_sizes.extend([3, 2])
    brain.vector_action_space_type_deprecated = get("space_type_pb2").continuous
    for i in range(3):
        info = out.unity_output.rl_output.agentInfos["Ball?team=0"].value.add(
            id=i, reward=0.5 - i, done=i == 2, max_step_reached=i == 2, group_id=1, group_reward=2
        )
        info.action_mask.extend([False, True, False, False, True])
        vector = info.observations.add(shape=[4], compression_type=obs.NONE, name="vec")
        vector.float_data.data.extend([0.25 * i, -1.0, 3.5, 1e-3])
        image = info.observations.add(shape=[8, 8, 3], compression_type=obs.PNG)
        image.compressed_data = b"\x89PNG\r\n\x1a\n" + bytes(range(i, 40))
        image.compressed_channel_mapping.extend([0, 1, 2])
        image.dimension_properties.extend([2, 3, 1])
        image.observation_type = obs.GOAL_SIGNAL
    out.unity_output.rl_output.side_channel = bytes(range(256))

    inp = get("unity_input_pb2").UnityInputProto()
    inp.rl_input.command = get("command_pb2").RESET
    actions = inp.rl_input.agent_actions["Ball?team=0"].value
    actions.add(continuous_actions=[0.5, -0.25], discrete_actions=[2, 1], value=1.5)
    inp.rl_initialization_input.seed = -7
    inp.rl_initialization_input.num_areas = 4
    meta = get("demonstration_meta_pb2").DemonstrationMetaProto(
        api_version=1, demonstration_name="d", number_steps=9, number_episodes=2, mean_reward=3.0
    )
    analytics = get("training_analytics_pb2").TrainingBehaviorInitialized(behavior_name="b")
    return {"output": out, "input": inp, "meta": meta, "analytics": analytics}


def test_bytes_written_by_either_parse_in_the_other(generated, rebuilt) -> None:
    mine, theirs = _samples(rebuilt), _samples(generated)
    for key, message in mine.items():
        other = theirs[key]
        assert type(message) is not type(other)
        data = message.SerializeToString(deterministic=True)
        assert data == other.SerializeToString(deterministic=True), key
        back = type(other).FromString(data)  # rebuilt -> generated
        assert back == other and text_format.MessageToString(back) == str(message), key
        forth = type(message).FromString(other.SerializeToString())  # generated -> rebuilt
        assert forth == message, key
    assert mine["output"].unity_output.rl_output.agentInfos["Ball?team=0"].value[0].observations[
        1
    ].WhichOneof("observation_data") == ("compressed_data")


def test_install_leaves_working_generated_modules_alone(generated) -> None:
    assert unity_messages.install() is False
    for name, module in generated.items():
        assert sys.modules[name] is module


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


def test_install_stands_in_when_the_generated_modules_cannot_import() -> None:
    # What protobuf >= 4 does to them (TypeError: Descriptors cannot be created directly),
    # imitated on this protobuf; the descriptors are read without importing them at all.
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
        from mlagents_envs.rpc_communicator import RpcCommunicator
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


def test_a_grpc_exchange_between_rebuilt_python_and_generated_unity_side() -> None:
    # mlagents_envs' UnityEnvironment (gRPC server) runs on the rebuilt classes; a client thread
    # plays Unity with the generated classes: initialization, reset, one step, close.
    out = _run(
        """
        import io, json, socket, threading, time
        import grpc, numpy as np
        from PIL import Image
        from mlagents_envs.communicator_objects import unity_message_pb2 as real
        from rlkit.bridges import unity_messages
        assert unity_messages.install(force=True)
        from mlagents_envs.communicator_objects import unity_message_pb2 as rebuilt
        assert rebuilt is not real
        from mlagents_envs.environment import UnityEnvironment
        from mlagents_envs.base_env import ActionTuple

        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        picture = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3) * 3
        png = io.BytesIO()
        Image.fromarray(picture).save(png, format="PNG")
        replies = []

        def unity():
            while socket.socket().connect_ex(("localhost", port)):
                time.sleep(0.02)
            exchange = grpc.insecure_channel(f"localhost:{port}").unary_unary(
                "/communicator_objects.UnityToExternalProto/Exchange",
                request_serializer=real.UnityMessageProto.SerializeToString,
                response_deserializer=real.UnityMessageProto.FromString,
            )
            hello = real.UnityMessageProto()
            hello.header.status = 200
            init = hello.unity_output.rl_initialization_output
            init.name, init.communication_version, init.package_version = "A", "1.5.0", "2.2.1"
            init.capabilities.baseRLCapabilities = True
            replies.append(exchange(hello, timeout=20))
            empty = real.UnityMessageProto()
            empty.header.status = 200
            replies.append(exchange(empty, timeout=20))
            for step in range(2):
                message = real.UnityMessageProto()
                message.header.status = 200
                if step == 0:
                    brain = message.unity_output.rl_initialization_output.brain_parameters.add()
                    brain.brain_name = "B?team=0"
                    brain.action_spec.num_continuous_actions = 2
                for i in range(2):
                    info = message.unity_output.rl_output.agentInfos["B?team=0"].value.add()
                    info.id, info.reward = i, 0.5 * i + step
                    vector = info.observations.add(shape=[3])
                    vector.float_data.data.extend([i, step, -1.0])
                    image = info.observations.add(shape=[6, 5, 3], compression_type=1)
                    image.compressed_data = png.getvalue()
                replies.append(exchange(message, timeout=20))

        client = threading.Thread(target=unity)
        client.start()
        env = UnityEnvironment(file_name=None, base_port=port, seed=5, timeout_wait=20)
        env.reset()
        steps, _ = env.get_steps("B?team=0")
        assert np.allclose(steps.obs[1], picture / 255.0, atol=1e-6)
        env.set_actions("B?team=0", ActionTuple(continuous=steps.obs[0][:, :2]))
        env.step()
        second, _ = env.get_steps("B?team=0")
        env.close()
        client.join(20)
        init, reset, step, close = replies
        assert init.unity_input.rl_initialization_input.seed == 5
        assert reset.unity_input.rl_input.command == 1 and step.unity_input.rl_input.command == 0
        sent = step.unity_input.rl_input.agent_actions["B?team=0"].value
        actions = [list(a.continuous_actions) for a in sent]
        print(json.dumps([actions, second.reward.tolist(), close.header.status]))
        """
    )
    assert out == [[[0.0, 0.0], [1.0, 0.0]], [1.0, 1.5], 400]


def test_serialized_files_reads_both_protoc_styles_without_running_the_module(
    tmp_path: Path, generated
) -> None:
    # protoc 3.x style (a str in `_b(...)` given as serialized_pb=) and current protoc style
    # (AddSerializedFile(b"...")), in modules that would raise if they were executed.
    header = generated[f"{PACKAGE}.header_pb2"].DESCRIPTOR.serialized_pb
    command = generated[f"{PACKAGE}.command_pb2"].DESCRIPTOR.serialized_pb
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
    assert message.SerializeToString() == b"\x08\xc8\x01\x12\x01x"
    assert modules[f"{PACKAGE}.command_pb2"].QUIT == 2
    proto = descriptor_pb2.FileDescriptorProto.FromString(command)
    assert proto.name == "mlagents_envs/communicator_objects/command.proto"
