from runner import stage_spec, sweep_env


def test_stage_containers_get_the_sweep_variables_and_shared_mounts(tmp_path):
    locks, project = tmp_path / "locks", tmp_path / "project"
    locks.mkdir()
    project.mkdir()
    environ = {
        "PIPELINE_LOCK_DIR": str(locks),
        "PIPELINE_SWEEP_ID": "s",
        "DVC_ROOT": str(project),
        "DVC_EXP_NAME": "s-1",
        "PIPELINE_SWEEP_KEYS": "recipes.fast.lr",
        "SECRET": "x",
    }
    env = stage_spec.stage_env(environ, "sha256:1")
    assert env["PIPELINE_SWEEP_ID"] == "s" and env["DVC_EXP_NAME"] == "s-1" and "SECRET" not in env
    assert env["PIPELINE_SWEEP_KEYS"] == "recipes.fast.lr"
    mounts = sweep_env.rw_mounts(environ)
    assert mounts == {p: {"bind": p, "mode": "rw"} for p in (str(locks), str(project))}
    outside = {k: v for k, v in environ.items() if k != "PIPELINE_SWEEP_ID"}
    assert list(sweep_env.rw_mounts(outside)) == [str(locks)]  # the project is mounted only in a sweep
    spec = stage_spec.container_spec(["train"], project / "tmp", "img", "sha", environ, 1, 1, [])
    assert spec["volumes"][str(project)]["mode"] == "rw"
