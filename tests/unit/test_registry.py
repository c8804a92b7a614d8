from stages.lib import registry
from stages.lib.registry import decide


def test_first_version_becomes_champion():
    d = decide(0.3, None, 0.01)
    assert d.promote and "first" in d.reason


def test_challenger_must_beat_champion_by_more_than_the_margin():
    assert decide(0.52, 0.50, 0.01).promote
    assert not decide(0.51, 0.50, 0.01).promote  # exactly the margin is not enough
    assert not decide(0.505, 0.50, 0.01).promote
    assert not decide(0.40, 0.50, 0.0).promote


def test_tie_without_margin_keeps_the_champion():
    d = decide(0.5, 0.5, 0.0)
    assert not d.promote and "does not beat" in d.reason


def test_any_gain_promotes_when_the_margin_is_zero():
    d = decide(0.5001, 0.5, 0.0)
    assert d.promote and "beats champion's 0.5000" in d.reason


def test_a_worse_model_is_never_promoted():
    assert not decide(0.1, 0.9, 0.0).promote
    assert not decide(0.0, 0.0, 0.0).promote


def test_unsupported_tells_a_missing_registry_from_a_missing_entity():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ENDPOINT_NOT_FOUND, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    assert registry.unsupported(MlflowException("Model Registry features are not supported by the store"))
    assert registry.unsupported(MlflowException("no route", error_code=ENDPOINT_NOT_FOUND))
    assert not registry.unsupported(MlflowException("no such alias", error_code=RESOURCE_DOES_NOT_EXIST))
    assert not registry.unsupported(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))
