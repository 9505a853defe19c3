"""Launch files, parameter files and the RViz layout.

Where ``launch_ros`` is installed the launch files are imported and their descriptions built.
It is not installable here, so they are also checked statically: they parse, each one starts the
detector (detector.launch.py itself, the others by including it and forwarding its arguments),
every node of this package names an existing console script, every referenced file exists, and
each parameter file sets only parameters the detector declares, with the declared type and range.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
from vad4space_ros.nodes.detector_parameters import PARAMETERS
import yaml

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'vad4space_ros'
LAUNCH_FILES = sorted((PACKAGE_ROOT / 'launch').glob('*.launch.py'))
CONFIG_FILES = sorted((PACKAGE_ROOT / 'config').glob('*.yaml'))
DETECTOR_CONFIGS = ('rover.yaml', 'orbiter.yaml')  # detector-only files of the two launch files
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


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_structure(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text(), filename=str(launch_file))
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    assert REQUIRED_ARGUMENTS <= set(positional_strings(tree, 'DeclareLaunchArgument'))
    detector_nodes = [call for call in keyword_calls(tree, 'Node')
                      if ast.unparse(call['executable']) == "'vad4space_detector'"]
    includes = [call for call in ast.walk(tree) if isinstance(call, ast.Call)
                and getattr(call.func, 'id', None) == 'IncludeLaunchDescription']
    if launch_file.name == DETECTOR_LAUNCH:
        assert len(detector_nodes) == 1 and not includes
        node = detector_nodes[0]
        remappings = ast.unparse(node['remappings'])
        assert "('image', LaunchConfiguration('image_topic'))" in remappings
        parameters = ast.unparse(node['parameters'])
        assert "LaunchConfiguration('config')" in parameters
        assert "'model_path': LaunchConfiguration('model_path')" in parameters
    else:
        assert not detector_nodes and len(includes) == 1, 'expected one detector.launch.py'
        include = includes[0]
        assert ast.unparse(include.args[0]) == (
            "PythonLaunchDescriptionSource(PathJoinSubstitution([share, 'launch', "
            f"'{DETECTOR_LAUNCH}']))")
        launch_arguments = {k.arg: k.value for k in include.keywords}['launch_arguments']
        forwarded = forwarded_arguments(launch_arguments)
        assert forwarded == {name: f'$(var {name})' for name in REQUIRED_ARGUMENTS}
    scripts = console_scripts()
    for call in keyword_calls(tree, 'Node'):
        package = ast.unparse(call['package'])
        if package in ('PACKAGE', repr(PACKAGE)):
            assert ast.literal_eval(call['executable']) in scripts


@pytest.mark.parametrize('launch_file', LAUNCH_FILES, ids=lambda path: path.name)
def test_files_referenced_by_launch_files_exist(launch_file: Path) -> None:
    tree = ast.parse(launch_file.read_text())
    referenced = [parts for parts in path_joins(tree) if parts]
    assert referenced, 'expected config paths built with PathJoinSubstitution'
    for parts in referenced:
        assert (PACKAGE_ROOT.joinpath(*parts)).is_file(), parts
    config_names = {parts[-1] for parts in referenced if parts[-1].endswith('.yaml')}
    if launch_file.name == DETECTOR_LAUNCH:
        # no default parameter file: the including launch files pass theirs as `config`
        assert declared_defaults(tree)['config'] is None
        assert config_names == set()
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


def detector_sections(document: dict) -> list[tuple[str, dict]]:
    """Return the (key, ros__parameters) sections addressed to the detector node."""
    return [(key, section['ros__parameters']) for key, section in document.items()
            if key.split('/')[-1] == 'vad4space_detector']


def test_rover_and_orbiter_configs_hold_only_a_detector_section() -> None:
    for name in DETECTOR_CONFIGS:
        document = yaml.safe_load((PACKAGE_ROOT / 'config' / name).read_text())
        assert len(document) == 1 and len(detector_sections(document)) == 1, name


@pytest.mark.parametrize('config_file', CONFIG_FILES, ids=lambda path: path.name)
def test_detector_sections_set_declared_parameters_within_range(config_file: Path) -> None:
    document = yaml.safe_load(config_file.read_text())
    for node_key, parameters in detector_sections(document):
        assert parameters, f'{config_file.name}: empty ros__parameters for {node_key}'
        for name, value in parameters.items():
            assert name in PARAMETERS, f'{config_file.name}: {name} is not declared by the node'
            default, descriptor = PARAMETERS[name]
            assert declared_type_matches(default, value), (
                f'{config_file.name}: {name}={value!r} is not a {type(default).__name__}')
            ranges = list(descriptor.floating_point_range) + list(descriptor.integer_range)
            for allowed in ranges:
                assert allowed.from_value <= value <= allowed.to_value, (name, value)


def test_rviz_layout_shows_input_heatmap_and_map() -> None:
    layout = yaml.safe_load((PACKAGE_ROOT / 'config' / 'vad4space.rviz').read_text())
    displays = layout['Visualization Manager']['Displays']
    topics = {display['Name']: display['Topic']['Value'] for display in displays
              if display['Class'] == 'rviz_default_plugins/Image'}
    assert topics['Heatmap'] == '/vad4space_detector/heatmap'
    assert topics['Anomaly map'] == '/vad4space_detector/anomaly_map'
    rover = (PACKAGE_ROOT / 'launch' / 'rover.launch.py').read_text()
    assert f"default_value='{topics['Input']}'" in rover
