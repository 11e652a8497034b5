"""Training never waits on input: the pipeline delivers far more than fit consumes."""

from zoo.benchmark import benchmark_training


def test_input_pipeline_outpaces_training_at_least_5x():
    result = benchmark_training("simple_cnn", "synthetic_shapes", batch_size=64, steps=40)
    assert result["pipeline_over_training"] >= 5, result
