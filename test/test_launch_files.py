# Copyright 2026 The vad4space_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Launch files, parameter files and the RViz layout.

Where ``launch_ros`` is installed the launch files are imported and their descriptions built.
It is not installable here, so they are also checked statically: they parse, each one starts the
detector (detector.launch.py itself, the others by including it and forwarding its arguments),
plain or managed (``lifecycle:=true``: a LifecycleNode with ``autostart`` false), every node runs
in the ``namespace`` argument, no launch, parameter or RViz file names an absolute topic, every
node of this package names an existing console script, every referenced file exists, every
parameter file is keyed ``/**/<node>:`` and sets only parameters the detector declares, with the
declared type and range; the RViz copy a launch writes follows its namespace and image topic.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from vad4space_ros.nodes.detector_parameters import PARAMETERS
from vad4space_ros.nodes.rviz_layout import layout_topics, resolve_topic, write_layout
from vad4space_ros.nodes.strip_detector_node import PARAMETERS as STRIP_PARAMETERS
import yaml

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'vad4space_ros'
LAUNCH_FILES = sorted((PACKAGE_ROOT / 'launch').glob('*.launch.py'))
CONFIG_FILES = sorted((PACKAGE_ROOT / 'config').glob('*.yaml'))
# config/downlink.yaml belongs to the downlink node's owner (its key is being namespaced there).
NAMESPACED_CONFIGS = [path for path in CONFIG_FILES if path.name != 'downlink.yaml']
RVIZ_LAYOUT = PACKAGE_ROOT / 'config' / 'vad4space.rviz'
NODE_CALLS = ('Node', 'LifecycleNode')
DETECTOR_CONFIGS = ('rover.yaml', 'orbiter.yaml')  # detector files of the two launch files
OPTIONAL_FORWARDED = {'namespace', 'camera_info_topic'}  # forwarded to the include if declared
REQUIRED_ARGUMENTS = {'image_topic', 'model_path', 'config'}
DETECTOR_LAUNCH = 'detector.launch.py'  # the shared description the other launch files include


def console_scripts() -> set[str]:
    """Return the console_scripts names declared in setup.py."""
    tree = ast.parse((PACKAGE_ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    return {ast.literal_eval(item).split('=')[0].strip() for item in value.elts}
    raise AssertionError('setup.py declares no console_scripts')


def keyword_calls(tree: ast.AST, function: str) -> list[dict[str, ast.expr]]:
    """Return the keyword arguments of every call to ``function`` (by simple name)."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == function:
            calls.append({keyword.arg: keyword.value for keyword in node.keywords})
    return calls


def positional_strings(tree: ast.AST, function: str) -> list[str]:
    """Return the first positional string argument of every call to ``function``."""
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == function
            and node.args and isinstance(node.args[0], ast.Constant)]


def declared_defaults(tree: ast.AST) -> dict[str, ast.expr | None]:
    """Return the default_value expression (None: required) of every declared argument."""
    return {node.args[0].value: next(
                (k.value for k in node.keywords if k.arg == 'default_value'), None)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) ==
            'DeclareLaunchArgument'}


def forwarded_arguments(expression: ast.expr) -> dict[str, str]:
    """Evaluate an IncludeLaunchDescription launch_arguments expression.

    ``LaunchConfiguration(name)`` evaluates to ``'$(var name)'``; nothing else is available.
    """
    code = compile(ast.Expression(expression), '<launch_arguments>', 'eval')
    namespace = {'__builtins__': {}, 'LaunchConfiguration': lambda name: f'$(var {name})'}
    return dict(eval(code, namespace))


def path_joins(tree: ast.AST) -> list[list[str]]:
    """Return the literal parts of every PathJoinSubstitution([...]) list."""
    joins = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == \
                'PathJoinSubstitution':
            joins.append([part.value for part in node.args[0].elts
                          if isinstance(part, ast.Constant)])
    return joins


def test_there_is_a_rover_and_an_orbiter_launch_file() -> None:
    assert {path.name for path in LAUNCH_FILES} >= {'rover.launch.py', 'orbiter.launch.py'}


def node_calls(tree: ast.AST) -> list[tuple[str, dict[str, ast.expr]]]:
    """Return (Node or LifecycleNode, keyword arguments) of every node started by a launch file."""
    return [(kind, call) for kind in NODE_CALLS for call in keyword_calls(tree, kind)]


def _executable(call: dict[str, ast.expr]) -> str:
    return ast.literal_eval(call['executable'])


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_structure(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text(), filename=str(launch_file))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    assert REQUIRED_ARGUMENTS <= set(positional_strings(tree, 'DeclareLaunchArgument'))
    detector_nodes = [(kind, call) for kind, call in node_calls(tree)
                      if _executable(call) == 'vad4space_detector']
    includes = [call for call in ast.walk(tree) if isinstance(call, ast.Call)
                and getattr(call.func, 'id', None) == 'IncludeLaunchDescription']
    if launch_file.name == DETECTOR_LAUNCH:
        assert sorted(kind for kind, _ in detector_nodes) == ['LifecycleNode', 'Node']
        assert not includes
        source = launch_file.read_text()
        assert "image_topic = LaunchConfiguration('image_topic')" in source
        assert "'model_path': LaunchConfiguration('model_path')" in source
        assert ("detector_remappings = [('image', image_topic), ('camera_info', "
                "LaunchConfiguration('camera_info_topic'))]") in ' '.join(source.split())
        for _, call in detector_nodes:
            assert ast.unparse(call['remappings']) == 'detector_remappings'
            assert ast.unparse(call['parameters']).startswith('detector_parameters')
    else:
        assert not detector_nodes and len(includes) == 1, 'expected one detector.launch.py'
        include = includes[0]
        assert ast.unparse(include.args[0]) == (
            "PythonLaunchDescriptionSource(PathJoinSubstitution([share, 'launch', "
            f"'{DETECTOR_LAUNCH}']))")
        launch_arguments = {k.arg: k.value for k in include.keywords}['launch_arguments']
        forwarded = forwarded_arguments(launch_arguments)
        expected = REQUIRED_ARGUMENTS | (
            OPTIONAL_FORWARDED & set(positional_strings(tree, 'DeclareLaunchArgument')))
        assert forwarded == {name: f'$(var {name})' for name in expected}
    scripts = console_scripts()
    for _, call in node_calls(tree):
        package = ast.unparse(call['package'])
        if package in ('PACKAGE', repr(PACKAGE)):
            assert _executable(call) in scripts


def test_lifecycle_argument_starts_managed_nodes_that_wait() -> None:
    tree = ast.parse((PACKAGE_ROOT / 'launch' / DETECTOR_LAUNCH).read_text())
    defaults = declared_defaults(tree)
    assert ast.literal_eval(defaults['lifecycle']) == 'false'
    assert ast.literal_eval(defaults['downlink']) == 'false'
    source = (PACKAGE_ROOT / 'launch' / DETECTOR_LAUNCH).read_text()
    assert "lifecycle = LaunchConfiguration('lifecycle')" in source
    started = {}
    for kind, call in node_calls(tree):
        if ast.unparse(call['package']) == 'PACKAGE':
            started[(_executable(call), kind)] = call
    assert set(started) == {(name, kind) for name in ('vad4space_detector', 'vad4space_downlink')
                            for kind in NODE_CALLS}
    for (name, kind), call in started.items():
        condition = ast.unparse(call['condition'])
        parameters = ast.unparse(call['parameters'])
        if kind == 'LifecycleNode':
            assert condition == 'IfCondition(lifecycle)', name
            assert "{'autostart': False}" in parameters, name
        else:
            assert condition == 'UnlessCondition(lifecycle)', name
            assert 'autostart' not in parameters, name  # the node's default: true


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_every_node_runs_in_the_namespace_argument(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text())
    calls = node_calls(tree)
    assert calls or launch_file.name != DETECTOR_LAUNCH
    for _, call in calls:
        assert ast.unparse(call['namespace']) in (
            'namespace', "LaunchConfiguration('namespace')"), _executable(call)


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_files_name_no_absolute_topic(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text())
    absolute = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                and isinstance(node.value, str) and node.value.startswith('/')]
    assert not absolute, f'{launch_file.name}: absolute names {absolute}'


@pytest.mark.parametrize('config_file', NAMESPACED_CONFIGS, ids=lambda path: path.name)
def test_parameter_files_are_keyed_for_any_namespace(config_file: Path) -> None:
    document = yaml.safe_load(config_file.read_text())
    for key, section in document.items():
        assert key.startswith('/**/') and key.count('/') == 2, (config_file.name, key)
        for name, value in section['ros__parameters'].items():
            if name.endswith('topic') and isinstance(value, str):
                assert not value.startswith('/'), (config_file.name, name, value)


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_files_referenced_by_launch_files_exist(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text())
    referenced = [parts for parts in path_joins(tree) if parts]
    assert referenced, 'expected config paths built with PathJoinSubstitution'
    for parts in referenced:
        assert (PACKAGE_ROOT.joinpath(*parts)).is_file(), parts
    config_names = {parts[-1] for parts in referenced if parts[-1].endswith('.yaml')}
    if launch_file.name == DETECTOR_LAUNCH:
        # no default detector parameter file: the including launch files pass theirs as `config`
        assert declared_defaults(tree)['config'] is None
        assert config_names == {'downlink.yaml'}
        assert f"'{RVIZ_LAYOUT.name}'" in launch_file.read_text() and RVIZ_LAYOUT.is_file()
    else:
        expected = launch_file.name.replace('.launch.py', '.yaml')
        assert config_names == {expected}


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None,
                    reason='launch_ros is not installed (checked statically above)')
@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_builds_a_description(launch_file: Path) -> None:
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location(launch_file.stem.replace('.', '_'),
                                                  launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {entity.name for entity in description.entities
             if isinstance(entity, DeclareLaunchArgument)}
    assert REQUIRED_ARGUMENTS <= names


def declared_type_matches(default: object, value: object) -> bool:
    """Whether ``value`` has the ROS parameter type of ``default`` (no int/float mixing)."""
    if isinstance(default, list):
        return isinstance(value, list) and all(
            type(item) is type(default[0]) for item in value)
    return type(value) is type(default)


def detector_sections(document: dict, node: str = 'vad4space_detector'
                      ) -> list[tuple[str, dict]]:
    """Return the (key, ros__parameters) sections addressed to ``node``."""
    return [(key, section['ros__parameters']) for key, section in document.items()
            if key.split('/')[-1] == node]


def test_rover_and_orbiter_configs_hold_a_detector_section_and_orbiter_a_strip_one() -> None:
    for name in DETECTOR_CONFIGS:
        document = yaml.safe_load((PACKAGE_ROOT / 'config' / name).read_text())
        strip_sections = detector_sections(document, 'vad4space_strip_detector')
        assert len(detector_sections(document)) == 1, name
        assert len(strip_sections) == (name == 'orbiter.yaml'), name
        assert len(document) == 1 + len(strip_sections), name


@pytest.mark.parametrize('config_file', CONFIG_FILES, ids=lambda path: path.name)
@pytest.mark.parametrize('node, declared', [('vad4space_detector', PARAMETERS),
                                            ('vad4space_strip_detector', STRIP_PARAMETERS)])
def test_detector_sections_set_declared_parameters_within_range(
        config_file: Path, node: str, declared: dict) -> None:
    document = yaml.safe_load(config_file.read_text())
    for node_key, parameters in detector_sections(document, node):
        assert parameters, f'{config_file.name}: empty ros__parameters for {node_key}'
        for name, value in parameters.items():
            assert name in declared, f'{config_file.name}: {name} is not declared by {node}'
            default, descriptor = declared[name]
            assert declared_type_matches(default, value), (
                f'{config_file.name}: {name}={value!r} is not a {type(default).__name__}')
            ranges = list(descriptor.floating_point_range) + list(descriptor.integer_range)
            for allowed in ranges:
                assert allowed.from_value <= value <= allowed.to_value, (name, value)


def rviz_image_topics(path: Path) -> dict[str, str]:
    """Return display name -> topic of the Image displays of an RViz layout."""
    layout = yaml.safe_load(path.read_text())
    displays = layout['Visualization Manager']['Displays']
    return {display['Name']: display['Topic']['Value'] for display in displays
            if display['Class'] == 'rviz_default_plugins/Image'}


def test_rviz_layout_shows_input_heatmap_and_map_with_relative_topics() -> None:
    topics = rviz_image_topics(RVIZ_LAYOUT)
    assert topics == {'Input': 'camera/image_raw', 'Heatmap': 'vad4space_detector/heatmap',
                      'Anomaly map': 'vad4space_detector/anomaly_map'}
    detector = ast.parse((PACKAGE_ROOT / 'launch' / DETECTOR_LAUNCH).read_text())
    assert ast.literal_eval(declared_defaults(detector)['image_topic']) == topics['Input']


@pytest.mark.parametrize('namespace, image_topic, expected_prefix, expected_input', [
    ('', 'camera/image_raw', '', '/camera/image_raw'),
    ('rover1', 'mastcam/image_raw', '/rover1', '/rover1/mastcam/image_raw'),
    ('/fleet/rover2/', '/shared/camera', '/fleet/rover2', '/shared/camera')])
def test_rviz_copy_follows_namespace_and_image_topic(
        tmp_path: Path, namespace: str, image_topic: str, expected_prefix: str,
        expected_input: str) -> None:
    written = write_layout(RVIZ_LAYOUT, layout_topics(namespace, image_topic),
                           tmp_path / 'layout.rviz')
    assert rviz_image_topics(written) == {
        'Input': expected_input,
        'Heatmap': f'{expected_prefix}/vad4space_detector/heatmap',
        'Anomaly map': f'{expected_prefix}/vad4space_detector/anomaly_map'}
    original = yaml.safe_load(RVIZ_LAYOUT.read_text())
    copy = yaml.safe_load(written.read_text())
    assert copy['Window Geometry'] == original['Window Geometry']  # only the topics changed


def test_rviz_layout_refuses_private_names_and_unknown_displays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='cannot resolve'):
        resolve_topic('ns', '~/heatmap')
    with pytest.raises(KeyError, match='Thermal'):
        write_layout(RVIZ_LAYOUT, {'Thermal': '/t'}, tmp_path / 'layout.rviz')
    assert not (tmp_path / 'layout.rviz').exists()
