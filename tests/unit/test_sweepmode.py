from stages.lib import sweepmode


def test_outside_a_sweep_nothing_changes():
    assert not sweepmode.active({})
    assert sweepmode.run_tags({"recipes.fast.lr": 0.4}, {}) == {}
    assert sweepmode.version_tags({}) == {}


def test_sweep_run_tags_nest_under_the_parent_and_name_the_swept_params():
    env = {
        "PIPELINE_SWEEP_ID": "sw1",
        "PIPELINE_SWEEP_PARENT_RUN": "abc",
        "PIPELINE_SWEEP_KEYS": "recipes.fast.lr,recipes.fast.epochs",
        "DVC_EXP_NAME": "sw1-2",
    }
    tags = sweepmode.run_tags({"recipes.fast.lr": 0.4}, env)
    assert tags == {
        "sweep.id": "sw1",
        "sweep.exp": "sw1-2",
        "mlflow.parentRunId": "abc",
        "sweep.param.recipes.fast.lr": "0.4",
        "sweep.param.recipes.fast.epochs": "?",
    }
    assert sweepmode.version_tags(env) == {"sweep.id": "sw1", "sweep.exp": "sw1-2"}
