"""Every registered model of every registered task, the whole way: build -> one training
step -> export -> verification -> zoo-model-server -> every signature over gRPC,
answers compared with Keras by the model's task (tests/task_checks.py). A model or
task registered later is checked here with no new test code."""

import pytest

import zoo
from task_checks import go_the_whole_way

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # All models in one verification process and one server: TensorFlow and gRPC
    # start once, not once per model.
    return go_the_whole_way(zoo.list_models(), tmp_path_factory.mktemp("every"))


@pytest.mark.parametrize("name", zoo.list_models())
def test_model_goes_the_whole_way(served, name):
    assert served[name] <= 1e-4
